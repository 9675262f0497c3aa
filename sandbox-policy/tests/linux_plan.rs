//! The Linux plan: mount order, masks and holes, Landlock, seccomp, gaps.

use std::path::PathBuf;

use sandbox_policy::{
    Context, Kind, LandlockAccess, LinuxPlan, MemFs, MountOp, Mountpoint, Policy, PolicyBuilder,
    RuleList,
};

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
        .dir("/home/user/project/.sandbox")
        .file("/home/user/project/.env", "SECRET=1")
        .dir("/home/user/project/secrets")
        .dir("/home/user/.ssh")
        .file("/home/user/.bashrc", "")
        .dir("/home/user/.config/fish")
}

fn plan(fs: &MemFs, f: impl FnOnce(PolicyBuilder) -> PolicyBuilder) -> LinuxPlan {
    let (policy, _) = f(Policy::builder(ctx())).build(fs).unwrap();
    policy.linux_plan(fs)
}

/// One line per operation: `rw /p`, `ro /p`, `mask-dir /p [mountpoints]`, `mask-file /p`.
fn ops(plan: &LinuxPlan) -> Vec<String> {
    plan.mounts
        .iter()
        .map(|op| match op {
            MountOp::BindWritable { path } => format!("rw {}", path.display()),
            MountOp::ReadOnly { path } => format!("ro {}", path.display()),
            MountOp::MaskFile { path } => format!("mask-file {}", path.display()),
            MountOp::MaskDir { path, mountpoints } => {
                let inner: Vec<String> = mountpoints
                    .iter()
                    .map(|m| m.path.display().to_string())
                    .collect();
                format!("mask-dir {} [{}]", path.display(), inner.join(" "))
            }
        })
        .collect()
}

#[test]
fn no_rules_mean_no_mounts_and_a_read_only_landlock_root() {
    let p = plan(&MemFs::new(), |b| b);
    assert!(p.mounts.is_empty());
    assert_eq!(p.landlock.rules.len(), 1);
    assert_eq!(p.landlock.rules[0].path, PathBuf::from("/"));
    assert_eq!(p.landlock.rules[0].access, LandlockAccess::ReadExecute);
}

#[test]
fn directories_between_a_writable_root_and_a_protection_are_pinned() {
    // `.git` becomes a mount point of its own, so it cannot be renamed away
    // and replaced by a `.git/hooks` the protection does not cover.
    let p = plan(&machine(), |b| b.allow("Edit(.)"));
    let git = ops(&p)
        .iter()
        .position(|o| o == "rw /home/user/project/.git")
        .expect("pinned");
    let hooks = ops(&p)
        .iter()
        .position(|o| o == "ro /home/user/project/.git/hooks")
        .unwrap();
    assert!(git < hooks);
    // A pin is not a writable root of its own for Landlock.
    assert!(!p.landlock.rules.iter().any(|r| r.path.ends_with(".git")));
}

#[test]
fn a_writable_root_is_bound_before_the_read_only_rebinds_inside_it() {
    let p = plan(&machine(), |b| b.allow("Edit(.)"));
    assert_eq!(
        ops(&p),
        vec![
            "rw /home/user/project",
            "rw /home/user/project/.git",
            "ro /home/user/project/.sandbox",
            "ro /home/user/project/.git/config",
            "ro /home/user/project/.git/hooks",
        ]
    );
    let landlock: Vec<_> = p
        .landlock
        .rules
        .iter()
        .map(|r| (r.path.display().to_string(), r.access))
        .collect();
    assert_eq!(
        landlock,
        vec![
            ("/".to_string(), LandlockAccess::ReadExecute),
            ("/home/user/project".to_string(), LandlockAccess::ReadWrite)
        ]
    );
}

#[test]
fn masks_inside_a_writable_root_come_after_its_bind() {
    let p = plan(&machine(), |b| {
        b.allow("Edit(.)")
            .deny("Read(./secrets)")
            .deny("Read(./.env)")
    });
    let ops = ops(&p);
    assert_eq!(ops[0], "rw /home/user/project");
    assert!(
        ops.contains(&"mask-dir /home/user/project/secrets []".to_string()),
        "{ops:?}"
    );
    assert!(
        ops.contains(&"mask-file /home/user/project/.env".to_string()),
        "{ops:?}"
    );
}

#[test]
fn a_masked_region_gets_its_allow_read_holes_bound_back() {
    let p = plan(&machine(), |b| {
        b.deny("Read(~)").allow("Read(.)").allow("Edit(./src)")
    });
    assert_eq!(
        ops(&p),
        vec![
            "mask-dir /home/user [/home/user/project]",
            "ro /home/user/project",
            "rw /home/user/project/src",
            // src has no .git and no .sandbox: placeholders keep them uncreatable.
            "ro /home/user/project/src/.git",
            "ro /home/user/project/src/.sandbox",
        ]
    );
    let MountOp::MaskDir { mountpoints, .. } = &p.mounts[0] else {
        panic!()
    };
    assert_eq!(
        mountpoints,
        &vec![Mountpoint {
            path: "/home/user/project".into(),
            kind: Kind::Dir
        }]
    );
}

#[test]
fn a_more_specific_deny_inside_a_hole_is_masked_again() {
    let p = plan(&machine(), |b| {
        b.deny("Read(~)").allow("Read(.)").deny("Read(./secrets)")
    });
    assert_eq!(
        ops(&p),
        vec![
            "mask-dir /home/user [/home/user/project]",
            "ro /home/user/project",
            "mask-dir /home/user/project/secrets []",
        ]
    );
}

#[test]
fn deny_write_outside_writable_roots_needs_no_mount() {
    let p = plan(&machine(), |b| b.deny("Edit(/etc)"));
    assert!(p.mounts.is_empty());
}

#[test]
fn glob_rules_mask_existing_matches_and_stay_in_the_plan_with_a_gap() {
    let fs = machine()
        .file("/home/user/project/a.pem", "")
        .file("/home/user/project/src/b.pem", "");
    let p = plan(&fs, |b| b.deny("Read(./**/*.pem)"));
    assert_eq!(
        ops(&p),
        vec![
            "mask-file /home/user/project/a.pem",
            "mask-file /home/user/project/src/b.pem"
        ]
    );
    assert_eq!(p.globs.len(), 1);
    assert_eq!(p.globs[0].list, RuleList::DenyRead);
    assert_eq!(p.globs[0].pattern.as_str(), "/home/user/project/**/*.pem");
    assert!(p.gaps.iter().any(|g| g
        .rule
        .as_ref()
        .is_some_and(|r| r.text == "Read(./**/*.pem)")
        && g.reason.contains("files created later that match are not")));
}

#[test]
fn a_glob_allow_write_binds_existing_matches_and_records_the_gap() {
    let fs = machine()
        .file("/home/user/project/src/a.ex", "")
        .file("/home/user/project/src/x/b.ex", "");
    let p = plan(&fs, |b| b.allow("Edit(./src/**/*.ex)"));
    assert_eq!(
        ops(&p),
        vec![
            "rw /home/user/project/src/a.ex",
            "rw /home/user/project/src/x/b.ex"
        ]
    );
    assert!(p.gaps.iter().any(|g| g
        .reason
        .starts_with("glob: only the 2 path(s) matching when the sandbox starts are writable")));
}

#[test]
fn a_missing_writable_path_is_a_gap() {
    let p = plan(&machine(), |b| b.allow("Edit(./build)"));
    assert!(p.mounts.is_empty());
    assert!(p.gaps.iter().any(|g| g.reason == "/home/user/project/build: does not exist when the sandbox starts, so it is not writable"));
}

fn placeholders(plan: &LinuxPlan) -> Vec<String> {
    plan.placeholders
        .iter()
        .map(|p| format!("{:?} {}", p.kind, p.path.display()))
        .collect()
}

#[test]
fn a_missing_protected_path_inside_a_writable_root_gets_a_read_only_placeholder() {
    let p = plan(&machine(), |b| b.allow("Edit(./src)"));
    // No .git in src: one directory stands in for both .git/hooks and .git/config.
    assert_eq!(
        placeholders(&p),
        vec![
            "Dir /home/user/project/src/.git",
            "Dir /home/user/project/src/.sandbox"
        ]
    );
    assert!(ops(&p).contains(&"ro /home/user/project/src/.git".to_string()));
    assert!(ops(&p).contains(&"ro /home/user/project/src/.sandbox".to_string()));
    assert!(
        !p.gaps.iter().any(|g| g.reason.contains("could create it")),
        "{:?}",
        p.gaps
    );
}

#[test]
fn a_missing_protected_file_gets_a_file_placeholder() {
    let fs = machine().dir("/home/user/project/src/.git/hooks");
    let p = plan(&fs, |b| b.allow("Edit(./src)"));
    assert_eq!(
        placeholders(&p),
        vec![
            "File /home/user/project/src/.git/config",
            "Dir /home/user/project/src/.sandbox"
        ]
    );
    assert!(ops(&p).contains(&"ro /home/user/project/src/.git/config".to_string()));
}

#[test]
fn a_missing_deny_write_path_stands_in_from_its_first_missing_component() {
    let p = plan(&machine(), |b| {
        b.allow("Edit(./src)").deny("Edit(./src/gen/out.rs)")
    });
    assert!(placeholders(&p).contains(&"Dir /home/user/project/src/gen".to_string()));
    assert!(ops(&p).contains(&"ro /home/user/project/src/gen".to_string()));
}

#[test]
fn a_missing_path_outside_writable_roots_needs_no_placeholder() {
    let p = plan(&machine(), |b| {
        b.deny("Edit(./nowhere)").deny("Read(./gone)")
    });
    assert!(p.placeholders.is_empty(), "{:?}", p.placeholders);
}

#[test]
fn seccomp_allows_unix_sockets_only_when_some_are_allowed() {
    let p = plan(&machine(), |b| b);
    assert!(!p.seccomp.allow_unix_sockets);
    let p = plan(&machine(), |b| {
        b.allow("UnixSocket(/run/a.sock)")
            .allow("UnixSocket(/run/b.sock)")
            .deny("UnixSocket(/run/b.sock)")
            .settings_json(
                sandbox_policy::Layer::Flag,
                "/",
                r#"{"network": {"allowLocalBinding": true}}"#,
            )
    });
    assert!(p.seccomp.allow_unix_sockets);
    assert_eq!(
        p.seccomp.unix_socket_paths,
        vec![PathBuf::from("/run/a.sock")]
    );
    assert!(p.seccomp.allow_local_binding);
    assert!(p.gaps.iter().any(|g| g
        .reason
        .starts_with("unix sockets: seccomp cannot see the path")));
}

#[test]
fn the_plan_survives_bincode() {
    let fs = machine().file("/home/user/project/a.pem", "");
    let p = plan(&fs, |b| {
        b.deny("Read(~)")
            .allow("Read(.)")
            .allow("Edit(./src)")
            .deny("Read(./**/*.pem)")
    });
    let bytes = bincode::serde::encode_to_vec(&p, bincode::config::standard()).unwrap();
    let (back, _): (LinuxPlan, usize) =
        bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
    assert_eq!(back, p);
}

fn built(fs: &MemFs, f: impl FnOnce(PolicyBuilder) -> PolicyBuilder) -> Policy {
    f(Policy::builder(ctx())).build(fs).unwrap().0
}

#[test]
fn the_plan_with_facts_is_the_plan() {
    let fs = machine();
    let policy = built(&fs, |b| {
        b.allow("Edit(/home/user/project)").deny("Read(~/.ssh)")
    });
    let (plan, facts) = policy.linux_plan_and_facts(&fs);
    assert_eq!(plan, policy.linux_plan(&fs));
    assert!(!facts.is_empty());
}

#[test]
fn the_facts_hold_while_the_filesystem_is_unchanged() {
    let fs = machine();
    let policy = built(&fs, |b| b.allow("Edit(/home/user/project)"));
    let (_, facts) = policy.linux_plan_and_facts(&fs);
    assert!(facts.hold(&fs));
    assert!(facts.hold(&fs.clone().dir("/home/user/elsewhere")));
}

#[test]
fn a_protected_path_created_since_breaks_the_facts() {
    // No `.sandbox` yet: the plan asks for a stand-in to bind there.
    let fs = MemFs::new().dir("/home/user/project/src");
    let policy = built(&fs, |b| b.allow("Edit(/home/user/project)"));
    let (plan, facts) = policy.linux_plan_and_facts(&fs);
    let now = fs.clone().dir("/home/user/project/.sandbox");
    assert!(!facts.hold(&now));
    assert_ne!(policy.linux_plan(&now), plan);
}

#[test]
fn a_glob_match_created_since_breaks_the_facts() {
    let fs = machine();
    let policy = built(&fs, |b| b.deny("Read(/home/user/project/*.key)"));
    let (_, facts) = policy.linux_plan_and_facts(&fs);
    assert!(!facts.hold(&fs.clone().file("/home/user/project/new.key", "k")));
}
