//! Golden Seatbelt profiles, generated on every platform from an in-memory machine.

use std::path::PathBuf;

use sandbox_policy::{Context, Layer, MemFs, Policy, PolicyBuilder, SeatbeltOptions};

fn ctx() -> Context {
    Context {
        home: PathBuf::from("/home/user"),
        cwd: PathBuf::from("/home/user/project"),
    }
}

fn machine() -> MemFs {
    MemFs::new()
        .dir("/home/user/project/src")
        .dir("/home/user/.ssh")
        .symlink("/tmp", "/private/tmp")
        .dir("/private/tmp")
}

fn profile(f: impl FnOnce(PolicyBuilder) -> PolicyBuilder) -> String {
    let fs = machine();
    let (policy, _) = f(Policy::builder(ctx())).build(&fs).unwrap();
    policy.seatbelt_profile(&fs)
}

#[test]
fn unrestricted_policy() {
    insta::assert_snapshot!(Policy::default().seatbelt_profile(&machine()));
}

#[test]
fn seed_example() {
    let seed = r#"{
      "sandbox": {"enabled": true, "network": {"httpProxyPort": 8888, "socksProxyPort": 1080}},
      "permissions": {
        "allow": ["WebFetch(domain:github.com)", "Read(.)", "Edit(./src)"],
        "deny": ["Read(~/.ssh)", "Edit(.env)"]
      }
    }"#;
    insta::assert_snapshot!(profile(|b| b.settings_json(
        Layer::Project("/home/user/project/.sandbox/settings.json".into()),
        "/home/user/project",
        seed
    )));
}

#[test]
fn home_hidden_except_the_project_with_a_secret_inside() {
    insta::assert_snapshot!(profile(|b| b
        .deny("Read(~)")
        .allow("Read(.)")
        .deny("Read(./secrets)")
        .allow("Edit(.)")));
}

#[test]
fn globs_become_exact_regexes() {
    insta::assert_snapshot!(profile(|b| b
        .allow("Edit(./src/**/*.ex)")
        .deny("Read(./**/.env*)")
        .deny("Edit(./src/[a-c]?.lock)")));
}

#[test]
fn symlinked_temp_rule_and_network_options() {
    let fs = machine();
    let (policy, _) = Policy::builder(ctx())
        .allow("Edit(/tmp/work)")
        .allow("UnixSocket(/var/run/docker.sock)")
        .settings_json(
            Layer::Flag,
            "/",
            r#"{"network": {"allowLocalBinding": true}}"#,
        )
        .build(&fs)
        .unwrap();
    let options = SeatbeltOptions {
        http_proxy_port: Some(3128),
        socks_proxy_port: None,
        temp_dirs: vec![PathBuf::from("/private/tmp")],
    };
    insta::assert_snapshot!(policy.seatbelt_profile_with(&fs, &options));
}
