//! A 64 MiB response passes through the proxy without the process's memory
//! growing with it. Alone in its test binary so the peak memory is ours.

mod common;

use std::time::Duration;

use common::*;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Request;

const BODY: usize = 64 << 20;

/// Peak resident set size of this process, in bytes.
fn peak_rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[tokio::test]
async fn a_64_mib_response_is_streamed_not_buffered() {
    let upstream = http_server("origin").await;
    let proxies = Proxies::start(pinned(policy(&["big.test"], &[]), &["big.test"])).await;
    let mut client = http_client(proxies.http).await;
    let before = peak_rss();

    let response = client
        .send_request(
            Request::get(format!(
                "http://big.test:{}/stream?{BODY}",
                upstream.addr.port()
            ))
            .body(Full::<Bytes>::default())
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut received = 0;
    let read = async {
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.unwrap().into_data() {
                received += data.len();
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .unwrap();
    assert_eq!(received, BODY);

    let grown = peak_rss().saturating_sub(before);
    eprintln!("peak RSS grew by {} KiB while 64 MiB passed", grown >> 10);
    assert!(
        grown < 16 << 20,
        "peak memory grew by {} MiB for a 64 MiB body",
        grown >> 20
    );
}
