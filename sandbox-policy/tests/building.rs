//! Building a policy from layers: paths, precedence, layers, reports, mandatory
//! protections.

use std::path::{Path, PathBuf};

use sandbox_policy::{Context, Effect, Layer, MemFs, Policy, PolicyError, Report, RuleSummary};

fn ctx() -> Context {
    Context {
        home: PathBuf::from("/home/user"),
        cwd: PathBuf::from("/home/user/project"),
    }
}

fn machine() -> MemFs {
    MemFs::new()
        .dir("/home/user/project/src")
        .dir("/home/user/project/.git/hooks")
        .file("/home/user/project/.git/config", "")
        .dir("/home/user/.ssh")
        .file("/home/user/.bashrc", "")
}

fn build(
    fs: &MemFs,
    f: impl FnOnce(sandbox_policy::PolicyBuilder) -> sandbox_policy::PolicyBuilder,
) -> (Policy, Report) {
    f(Policy::builder(ctx())).build(fs).unwrap()
}

fn rules_of<'a>(policy: &'a Policy, list: &str) -> Vec<&'a str> {
    policy
        .filesystem
        .deny_read
        .iter()
        .map(|r| (r, "denyRead"))
        .chain(
            policy
                .filesystem
                .allow_read
                .iter()
                .map(|r| (r, "allowRead")),
        )
        .chain(
            policy
                .filesystem
                .allow_write
                .iter()
                .map(|r| (r, "allowWrite")),
        )
        .chain(
            policy
                .filesystem
                .deny_write
                .iter()
                .map(|r| (r, "denyWrite")),
        )
        .filter(|(_, l)| *l == list)
        .map(|(r, _)| r.pattern.as_str())
        .collect()
}

#[test]
fn the_default_policy_is_unrestricted_and_a_built_one_is_not() {
    assert!(Policy::default().is_unrestricted());
    let (policy, _) = build(&machine(), |b| b);
    assert!(!policy.is_unrestricted());
}

#[test]
fn flag_paths_are_relative_to_the_cwd() {
    let (policy, _) = build(&machine(), |b| b.allow("Edit(./src)").allow("Edit(src)"));
    assert_eq!(
        rules_of(&policy, "allowWrite"),
        vec!["/home/user/project/src", "/home/user/project/src"]
    );
}

#[test]
fn settings_paths_are_relative_to_the_project_the_file_configures() {
    let fs = machine().file(
        "/elsewhere/.sandbox/settings.json",
        r#"{"permissions": {"allow": ["Edit(./out)"]}, "filesystem": {"denyRead": ["secrets"]}}"#,
    );
    let (policy, _) = build(&fs, |b| {
        b.settings_file("/elsewhere/.sandbox/settings.json")
    });
    assert_eq!(rules_of(&policy, "allowWrite"), vec!["/elsewhere/out"]);
    assert_eq!(rules_of(&policy, "denyRead"), vec!["/elsewhere/secrets"]);
}

#[test]
fn settings_json_paths_are_relative_to_the_given_dir() {
    let (policy, _) = build(&machine(), |b| {
        b.settings_json(
            Layer::SettingsFile("/cfg/s.json".into()),
            "/cfg",
            r#"{"permissions": {"deny": ["Read(x)"]}}"#,
        )
    });
    assert_eq!(rules_of(&policy, "denyRead"), vec!["/cfg/x"]);
}

#[test]
fn double_slash_and_tilde_forms_resolve() {
    let (policy, _) = build(&machine(), |b| {
        b.deny("Read(//etc/shadow)")
            .deny("Read(~/.ssh)")
            .deny("Read(~)")
    });
    assert_eq!(
        rules_of(&policy, "denyRead"),
        vec!["/etc/shadow", "/home/user/.ssh", "/home/user"]
    );
}

#[test]
fn symlinks_in_rule_paths_are_resolved() {
    let fs = machine()
        .dir("/data/keys")
        .symlink("/home/user/keys", "/data/keys");
    let (policy, _) = build(&fs, |b| b.deny("Read(~/keys)"));
    assert_eq!(rules_of(&policy, "denyRead"), vec!["/data/keys"]);
    assert!(!policy.filesystem.can_read(Path::new("/data/keys/id")));
}

#[test]
fn permission_kinds_land_in_their_lists() {
    let (policy, _) = build(&machine(), |b| {
        b.allow("Read(.)")
            .deny("Read(~/.ssh)")
            .allow("Edit(./src)")
            .deny("Edit(.env)")
            .allow("WebFetch(domain:github.com)")
            .deny("WebFetch(domain:malicious.com)")
            .allow("UnixSocket(/var/run/docker.sock)")
            .deny("UnixSocket(/run/other.sock)")
    });
    assert_eq!(rules_of(&policy, "allowRead"), vec!["/home/user/project"]);
    assert_eq!(rules_of(&policy, "denyRead"), vec!["/home/user/.ssh"]);
    assert_eq!(
        rules_of(&policy, "allowWrite"),
        vec!["/home/user/project/src"]
    );
    assert_eq!(rules_of(&policy, "denyWrite")[0], "/home/user/project/.env");
    assert_eq!(
        policy.network.allow[0].target.to_string(),
        "domain:github.com"
    );
    assert_eq!(
        policy.network.deny[0].target.to_string(),
        "domain:malicious.com"
    );
    assert_eq!(
        policy.network.allow_unix_sockets[0].pattern.as_str(),
        "/var/run/docker.sock"
    );
    assert_eq!(
        policy.network.deny_unix_sockets[0].pattern.as_str(),
        "/run/other.sock"
    );
}

#[test]
fn srt_field_names_load() {
    let text = r#"{
        "network": {
            "allowedDomains": ["github.com", "*.npmjs.org"],
            "deniedDomains": ["evil.npmjs.org"],
            "allowUnixSockets": ["/var/run/docker.sock"],
            "allowLocalBinding": true,
            "allowPrivateDestinations": true,
            "resolve": {"DB.test.": "10.0.0.5"},
            "httpProxyPort": 8888,
            "socksProxyPort": 1080
        },
        "filesystem": {
            "denyRead": ["~"], "allowRead": ["~/project"],
            "allowWrite": ["."], "denyWrite": [".env"]
        }
    }"#;
    let (policy, report) = build(&machine(), |b| {
        b.settings_json(
            Layer::Project("/home/user/project/.sandbox/settings.json".into()),
            "/home/user/project",
            text,
        )
    });
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let net = &policy.network;
    assert!(net.decide("registry.npmjs.org", 443).allowed);
    assert!(!net.decide("evil.npmjs.org", 443).allowed);
    assert!(net.allow_local_binding && net.allow_private_destinations);
    assert_eq!(
        net.resolve_override("db.test"),
        Some("10.0.0.5".parse().unwrap())
    );
    assert_eq!(
        (net.http_proxy_port, net.socks_proxy_port),
        (Some(8888), Some(1080))
    );
    let fs = &policy.filesystem;
    assert!(!fs.can_read(Path::new("/home/user/.aws/credentials")));
    assert!(fs.can_read(Path::new("/home/user/project/README")));
    assert!(fs.can_write(Path::new("/home/user/project/src/x")));
    assert!(!fs.can_write(Path::new("/home/user/project/.env")));
}

#[test]
fn the_sandbox_section_is_accepted_too() {
    let text = r#"{"sandbox": {"network": {"allowedDomains": ["a.com"], "allowLocalBinding": true}, "filesystem": {"allowWrite": ["/out"]}}}"#;
    let (policy, report) = build(&machine(), |b| b.settings_json(Layer::Flag, "/", text));
    assert!(report.warnings.is_empty());
    assert!(policy.network.decide("a.com", 1).allowed);
    assert!(policy.network.allow_local_binding);
    assert_eq!(
        policy.filesystem.allow_write[0].origin.field,
        "sandbox.filesystem.allowWrite"
    );
}

#[test]
fn layers_add_rules_and_deny_wins_whatever_the_order() {
    let fs = machine()
        .file("/home/user/.sandbox/settings.json", r#"{"permissions": {"deny": ["WebFetch(domain:github.com)", "Edit(./project/src/gen)"]}}"#)
        .file("/home/user/project/.sandbox/settings.json", r#"{"permissions": {"allow": ["WebFetch(domain:github.com)", "WebFetch(domain:crates.io)", "Edit(./src)"]}}"#);
    let (policy, report) = build(&fs, |b| {
        b.default_settings().allow("WebFetch(domain:docs.rs)")
    });
    assert_eq!(
        report.layers,
        vec![
            Layer::User("/home/user/.sandbox/settings.json".into()),
            Layer::Project("/home/user/project/.sandbox/settings.json".into())
        ]
    );
    let net = &policy.network;
    assert!(!net.decide("github.com", 443).allowed);
    assert!(net.decide("crates.io", 443).allowed);
    assert!(net.decide("docs.rs", 443).allowed);
    assert!(policy
        .filesystem
        .can_write(Path::new("/home/user/project/src/lib.rs")));
    assert!(!policy
        .filesystem
        .can_write(Path::new("/home/user/project/src/gen/x.rs")));
}

#[test]
fn a_later_layer_replaces_scalars() {
    let (policy, _) = build(&machine(), |b| {
        b.settings_json(
            Layer::Flag,
            "/",
            r#"{"network": {"allowLocalBinding": true, "httpProxyPort": 1}}"#,
        )
        .settings_json(
            Layer::Flag,
            "/",
            r#"{"network": {"allowLocalBinding": false}}"#,
        )
    });
    assert!(!policy.network.allow_local_binding);
    assert_eq!(policy.network.http_proxy_port, Some(1));
}

#[test]
fn missing_default_layers_are_skipped_but_a_named_file_must_exist() {
    let (_, report) = build(&machine(), |b| b.default_settings());
    assert!(report.layers.is_empty());
    let err = Policy::builder(ctx())
        .settings_file("nope.json")
        .build(&machine())
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("settings file /home/user/project/nope.json: cannot read:"),
        "{err}"
    );
}

#[test]
fn unknown_fields_are_reported_with_the_file() {
    let fs = machine().file(
        "/p/.sandbox/settings.json",
        r#"{"network": {"allowedDomain": ["x.com"]}}"#,
    );
    let (_, report) = build(&fs, |b| b.settings_file("/p/.sandbox/settings.json"));
    assert_eq!(
        report
            .warnings
            .iter()
            .map(|w| w.to_string())
            .collect::<Vec<_>>(),
        vec![
            r#"settings file /p/.sandbox/settings.json: unknown field "network.allowedDomain" (did you mean "allowedDomains"?)"#
        ]
    );
}

#[test]
fn a_bad_permission_in_a_settings_file_names_the_file_and_field() {
    let fs = machine().file("/p/s.json", r#"{"permissions": {"allow": ["Raed(/x)"]}}"#);
    let err = Policy::builder(ctx())
        .settings_file("/p/s.json")
        .build(&fs)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"settings file /p/s.json: permissions.allow: invalid permission "Raed(/x)": unknown kind "Raed" (expected Read, Edit, WebFetch or UnixSocket)"#
    );
}

#[test]
fn a_bad_flag_is_an_error_quoting_it() {
    let err = Policy::builder(ctx())
        .permission(Effect::Allow, "WebFetch(domain:)")
        .build(&machine())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"command line: --allow: invalid permission "WebFetch(domain:)": empty domain after "domain:""#
    );
    let err = Policy::builder(ctx())
        .deny("Read(/a/[x)")
        .build(&machine())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"command line: --deny: invalid permission "Read(/a/[x)": path "/a/[x": unclosed "[" in "[x""#
    );
}

#[test]
fn bad_values_in_settings_lists_name_the_field_and_index() {
    let cases = [
        (
            r#"{"network": {"allowedDomains": ["ok.com", "bad domain"]}}"#,
            r#"settings file /s.json: network.allowedDomains[1]: invalid domain "bad domain": character ' ' is not allowed in a host name"#,
        ),
        (
            r#"{"network": {"resolve": {"db": "not-an-ip"}}}"#,
            r#"settings file /s.json: network.resolve.db: invalid IP address "not-an-ip""#,
        ),
        (
            r#"{"filesystem": {"denyRead": ["~bob/x"]}}"#,
            r#"settings file /s.json: filesystem.denyRead[0]: path "~bob/x": "~bob/x": only "~" and "~/…" are supported, not another user's home"#,
        ),
    ];
    for (text, expected) in cases {
        let fs = machine().file("/s.json", text);
        let err: PolicyError = Policy::builder(ctx())
            .settings_file("/s.json")
            .build(&fs)
            .unwrap_err();
        assert_eq!(err.to_string(), expected);
    }
}

#[test]
fn mandatory_protections_deny_writing_rc_files_and_repository_internals() {
    let (policy, _) = build(&machine(), |b| b.allow("Edit(~)").allow("Edit(.)"));
    let fs = &policy.filesystem;
    assert!(fs.can_write(Path::new("/home/user/notes.txt")));
    for path in [
        "/home/user/.bashrc",
        "/home/user/.zshrc",
        "/home/user/.config/fish/config.fish",
        "/home/user/.sandbox/settings.json",
        "/home/user/project/.git/hooks/pre-commit",
        "/home/user/project/.git/config",
        "/home/user/project/.sandbox/settings.json",
    ] {
        assert!(!fs.can_write(Path::new(path)), "{path}");
        assert_eq!(
            fs.write_rule(Path::new(path)).unwrap().origin.layer,
            Layer::Mandatory,
            "{path}"
        );
    }
    assert!(fs.can_write(Path::new("/home/user/project/.git/objects/ab")));
}

#[test]
fn an_explicit_allow_write_lifts_a_mandatory_protection() {
    let (policy, _) = build(&machine(), |b| {
        b.allow("Edit(.)").allow("Edit(./.git/hooks)")
    });
    let fs = &policy.filesystem;
    assert!(fs.can_write(Path::new("/home/user/project/.git/hooks/pre-commit")));
    assert!(!fs.can_write(Path::new("/home/user/project/.git/config")));
}

#[test]
fn rules_are_listed_with_their_layer_and_text() {
    let (policy, _) = build(&machine(), |b| {
        b.deny("Read(~/.ssh)").allow("WebFetch(domain:x.com)")
    });
    let rules = policy.rules();
    assert_eq!(
        rules[0],
        RuleSummary {
            list: "denyRead",
            value: "/home/user/.ssh".into(),
            origin: sandbox_policy::Origin::new(Layer::Flag, "--deny", "Read(~/.ssh)"),
        }
    );
    assert!(rules.iter().any(|r| r.list == "denyWrite"
        && r.origin.layer == Layer::Mandatory
        && r.origin.text == "~/.bashrc"));
    assert!(rules
        .iter()
        .any(|r| r.list == "allowedDomains" && r.value == "domain:x.com"));
}

#[test]
fn a_policy_survives_json_and_bincode() {
    let (policy, _) = build(&machine(), |b| {
        b.deny("Read(~/.ssh)")
            .allow("Edit(./src/**/*.rs)")
            .allow("WebFetch(tcp:[::1]:80)")
    });
    let json = serde_json::to_string(&policy).unwrap();
    assert_eq!(serde_json::from_str::<Policy>(&json).unwrap(), policy);
    let bytes = bincode::serde::encode_to_vec(&policy, bincode::config::standard()).unwrap();
    let (back, _): (Policy, usize) =
        bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
    assert_eq!(back, policy);
}
