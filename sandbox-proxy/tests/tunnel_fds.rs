//! Many concurrent tunnels open and close without errors or leaked descriptors.
//! Alone in its test binary so that no other test opens descriptors meanwhile.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::task::JoinSet;

const TUNNELS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_tunnels_close_without_leaking_descriptors() {
    let echo = echo_server().await;
    let proxies = Proxies::start(pinned(policy(&["echo.test"], &[]), &["echo.test"])).await;
    let target = format!("echo.test:{}", echo.addr.port());
    let before = open_fds();

    let mut tunnels = JoinSet::new();
    for i in 0..TUNNELS {
        let (http, socks, target) = (proxies.http, proxies.socks, target.clone());
        let port = echo.addr.port();
        tunnels.spawn(async move {
            let message = format!("tunnel {i}");
            let mut stream = if i % 2 == 0 {
                let (status, _, stream) = connect(http, &target).await;
                assert_eq!(status, 200);
                stream
            } else {
                let (code, _, stream) = socks_connect(socks, Dest::Name("echo.test"), port).await;
                assert_eq!(code, 0);
                stream
            };
            assert_eq!(
                round_trip(&mut stream, message.as_bytes()).await,
                message.as_bytes()
            );
        });
    }
    while let Some(done) = tunnels.join_next().await {
        done.expect("a tunnel failed");
    }

    // Both ends close asynchronously: give the proxy's and the echo server's tasks
    // a moment to notice.
    let deadline = Instant::now() + Duration::from_secs(10);
    while open_fds() > before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(open_fds(), before, "descriptors leaked");
    assert!(proxies.violations().is_empty());
}
