//! cgroup v1 memory and pids controllers for one evaluation.
//!
//! Used where this process may create cgroups (as root on hosts with the v1
//! controllers mounted, as on these machines): unlike rlimits they cover the
//! whole process tree and count what they refuse, so `memory_limit` and
//! `pids_limit` are known rather than guessed.
//!
//! An executor keeps emptied cgroups for its next evaluations (see
//! [`Shelf`](crate::cgroup_shelf::Shelf)); each use counts from a baseline.
//!
//! cgroup v2 is not used yet: it needs a delegated subtree with the memory and
//! pids controllers enabled, which these machines do not offer to test against.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// Where the v1 controllers this module uses are mounted, if they are.
#[derive(Debug, Default, Clone)]
pub(crate) struct Support {
    /// `<memory mount>/<our cgroup>`.
    pub memory: Option<PathBuf>,
    /// `<pids mount>/<our cgroup>`.
    pub pids: Option<PathBuf>,
}

/// What this host offers, read once per process.
pub(crate) fn support() -> &'static Support {
    static SUPPORT: OnceLock<Support> = OnceLock::new();
    SUPPORT.get_or_init(|| {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        Support {
            memory: v1_base(&mountinfo, &own, "memory"),
            pids: v1_base(&mountinfo, &own, "pids"),
        }
    })
}

/// Removes the cgroups that executors which died without cleaning up (killed,
/// say) left under `support`'s `sandbox` groups: every one is named after
/// its executor's pid, and only those of pids that no longer exist, and
/// only empty ones (the kernel refuses the rest), are removed. Once per
/// process.
pub(crate) fn remove_stale(support: &Support) {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        for base in [&support.memory, &support.pids].into_iter().flatten() {
            let dir = base.join("sandbox");
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let name = entry.file_name();
                let owner = name.to_str().and_then(|n| n.split('-').next()?.parse::<u32>().ok());
                let Some(owner) = owner else { continue };
                if !Path::new(&format!("/proc/{owner}")).exists() {
                    if let Err(error) = std::fs::remove_dir(entry.path()) {
                        tracing::debug!(dir = %entry.path().display(), %error, "cannot remove a stale cgroup");
                    }
                }
            }
        }
    });
}

/// The directory of our own cgroup in the v1 hierarchy that has `controller`.
fn v1_base(mountinfo: &str, own_cgroups: &str, controller: &str) -> Option<PathBuf> {
    let mount = mountinfo.lines().find_map(|line| {
        let (mount_part, fs_part) = line.split_once(" - ")?;
        let mut fs = fs_part.split_whitespace();
        let (fstype, _source, options) = (fs.next()?, fs.next()?, fs.next()?);
        let has = options.split(',').any(|o| o == controller);
        (fstype == "cgroup" && has).then(|| mount_part.split_whitespace().nth(4))?
    })?;
    let own = own_cgroups.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        controllers
            .split(',')
            .any(|c| c == controller)
            .then(|| path.trim_start_matches('/').to_string())
    })?;
    Some(Path::new(mount).join(own))
}

/// The cgroups of one evaluation; removed by [`remove`](Self::remove), or
/// kept for another evaluation (see [`Shelf`](crate::cgroup_shelf::Shelf)).
#[derive(Debug)]
pub(crate) struct Cgroup {
    memory: Option<PathBuf>,
    pids: Option<PathBuf>,
    /// The limits last written, when known.
    limits: Option<CgroupLimits>,
    /// The counters as this use began: a reused cgroup counts on from where
    /// its last evaluation left them.
    baseline: Baseline,
    /// The counter files, opened on first use.
    counters: OnceLock<Counters>,
}

/// The counter files of a cgroup pair, opened once: a reused cgroup serves
/// many evaluations, and opening a control file by its long path costs
/// several times what reading it does (the figures are read on the
/// evaluation's path).
#[derive(Debug, Default)]
struct Counters {
    oom_control: Option<File>,
    /// Read and written: [`Cgroup::reset`] resets it.
    max_usage: Option<File>,
    pids_events: Option<File>,
}

impl Counters {
    fn open(memory: Option<&Path>, pids: Option<&Path>) -> Self {
        let open = |dir: Option<&Path>, file: &str, write: bool| {
            let path = dir?.join(file);
            File::options().read(true).write(write).open(path).ok()
        };
        Counters {
            oom_control: open(memory, "memory.oom_control", false),
            max_usage: open(memory, "memory.max_usage_in_bytes", true),
            pids_events: open(pids, "pids.events", false),
        }
    }
}

/// The whole of a control file, read from its start.
fn read_at_start(file: Option<&File>) -> Option<String> {
    let mut buf = [0u8; 512];
    let n = file?.read_at(&mut buf, 0).ok()?;
    String::from_utf8(buf[..n].to_vec()).ok()
}

/// Counters of a cgroup at the start of a use, subtracted from its figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Baseline {
    oom_kills: u64,
    pids_refused: u64,
    /// Memory still charged from earlier uses (cache, kernel objects).
    memory: u64,
}

/// The limits a cgroup pair is set to (`None`: unlimited).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CgroupLimits {
    /// `memory.limit_in_bytes` (and `memsw`).
    pub memory: Option<u64>,
    /// `pids.max`.
    pub pids: Option<u32>,
}

/// What the controllers counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Stats {
    /// Processes the OOM killer killed for the memory limit.
    pub oom_kills: u64,
    /// Peak memory of the whole tree (above what earlier uses of a reused
    /// cgroup left charged).
    pub peak_memory: Option<u64>,
    /// Forks refused by the pids limit.
    pub pids_refused: u64,
}

fn write(path: &Path, value: &str) -> io::Result<()> {
    std::fs::write(path, value).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("writing {value:?} to {}: {e}", path.display()),
        )
    })
}

fn read(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file)).ok()
}

/// The number after `key` on one of `text`'s lines.
fn field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// Creates the cgroup `name` under a controller's `base` (and the
/// `sandbox` directory holding ours).
fn make_dir(base: &Path, name: &str) -> io::Result<PathBuf> {
    let dir = base.join("sandbox").join(name);
    std::fs::create_dir_all(&dir)
        .map_err(|e| io::Error::new(e.kind(), format!("creating {}: {e}", dir.display())))?;
    Ok(dir)
}

impl Cgroup {
    /// Creates cgroups named `name` with the given limits, each under its
    /// controller's base from `support`. `pids` counts the evaluation's init too.
    pub fn create(
        support: &Support,
        name: &str,
        memory: Option<u64>,
        pids: Option<u32>,
    ) -> io::Result<Self> {
        let mut cgroup = Cgroup {
            memory: None,
            pids: None,
            limits: Some(CgroupLimits { memory, pids }),
            baseline: Baseline::default(),
            counters: OnceLock::new(),
        };
        let make = |base: &Path| make_dir(base, name);
        if let (Some(limit), Some(base)) = (memory, &support.memory) {
            let dir = make(base)?;
            cgroup.memory = Some(dir.clone());
            write(&dir.join("memory.limit_in_bytes"), &limit.to_string())?;
            let swap = dir.join("memory.memsw.limit_in_bytes");
            if swap.exists() {
                write(&swap, &limit.to_string())?;
            }
        }
        if let (Some(limit), Some(base)) = (pids, &support.pids) {
            let dir = make(base)?;
            cgroup.pids = Some(dir.clone());
            write(&dir.join("pids.max"), &limit.to_string())?;
        }
        Ok(cgroup)
    }

    /// Empty cgroups (both controllers this host has, no limits yet) for a
    /// spare runner to move itself into while it waits: moving a process
    /// between v1 cgroups can cost a full RCU grace period (milliseconds on
    /// an idle host), which then stays off the evaluation's path.
    pub fn spare(support: &Support, name: &str) -> io::Result<Self> {
        let make = |base: &Path| make_dir(base, name);
        let mut cgroup = Cgroup {
            memory: None,
            pids: None,
            limits: Some(CgroupLimits::default()),
            baseline: Baseline::default(),
            counters: OnceLock::new(),
        };
        if let Some(base) = &support.memory {
            cgroup.memory = Some(make(base)?);
        }
        if let Some(base) = &support.pids {
            match make(base) {
                Ok(dir) => cgroup.pids = Some(dir),
                Err(e) => {
                    cgroup.remove();
                    return Err(e);
                }
            }
        }
        Ok(cgroup)
    }

    /// Sets the limits of a [`spare`](Self::spare) cgroup (`None`: no
    /// limit); `pids` counts the evaluation's init too. Limits already in
    /// place are not written again.
    pub fn set_limits(&mut self, limits: CgroupLimits) -> io::Result<()> {
        if self.limits == Some(limits) {
            return Ok(());
        }
        // Unknown until every write is through.
        self.limits = None;
        if let Some(dir) = &self.memory {
            let swap = dir.join("memory.memsw.limit_in_bytes");
            let swap = swap.exists().then_some(swap);
            let memory = dir.join("memory.limit_in_bytes");
            // memsw may never be below the memory limit: lift both, then
            // lower them in the other order.
            if let Some(swap) = &swap {
                write(swap, "-1")?;
            }
            write(&memory, "-1")?;
            if let Some(limit) = limits.memory {
                write(&memory, &limit.to_string())?;
                if let Some(swap) = &swap {
                    write(swap, &limit.to_string())?;
                }
            }
        }
        if let Some(dir) = &self.pids {
            let max = limits.pids.map_or("max".to_string(), |n| n.to_string());
            write(&dir.join("pids.max"), &max)?;
        }
        self.limits = Some(limits);
        Ok(())
    }

    /// Whether the cgroups have the memory controller if `memory`, and the
    /// pids controller if `pids`.
    pub fn covers(&self, memory: bool, pids: bool) -> bool {
        (!memory || self.memory.is_some()) && (!pids || self.pids.is_some())
    }

    /// Whether no process is left in the cgroups.
    pub fn is_empty(&self) -> bool {
        [&self.memory, &self.pids]
            .into_iter()
            .flatten()
            .all(|dir| read(dir, "cgroup.procs").is_some_and(|p| p.trim().is_empty()))
    }

    /// Readies emptied cgroups for another evaluation: its peak memory starts
    /// from what is charged now, and its OOM kills and refused forks from the
    /// counts so far. Returns the memory still charged (page cache and kernel
    /// objects the last evaluations left, which also counts against the
    /// limit until the kernel reclaims it).
    pub fn reset(&mut self) -> io::Result<u64> {
        let counters = self.counters();
        let mut baseline = Baseline::default();
        if let Some(dir) = &self.memory {
            let unreadable = || {
                io::Error::other(format!(
                    "cannot read or reset {}/memory.max_usage_in_bytes",
                    dir.display()
                ))
            };
            // Writing 0 resets the peak to the current usage.
            let max_usage = counters.max_usage.as_ref().ok_or_else(unreadable)?;
            max_usage.write_at(b"0", 0)?;
            baseline.memory = read_at_start(Some(max_usage))
                .and_then(|t| t.trim().parse().ok())
                .ok_or_else(unreadable)?;
            baseline.oom_kills = read_at_start(counters.oom_control.as_ref())
                .and_then(|t| field(&t, "oom_kill "))
                .unwrap_or(0);
        }
        if self.pids.is_some() {
            baseline.pids_refused = read_at_start(counters.pids_events.as_ref())
                .and_then(|t| field(&t, "max "))
                .unwrap_or(0);
        }
        self.baseline = baseline;
        Ok(baseline.memory)
    }

    fn counters(&self) -> &Counters {
        self.counters
            .get_or_init(|| Counters::open(self.memory.as_deref(), self.pids.as_deref()))
    }

    pub fn has_memory(&self) -> bool {
        self.memory.is_some()
    }

    pub fn has_pids(&self) -> bool {
        self.pids.is_some()
    }

    /// The files init writes itself into.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        [&self.memory, &self.pids]
            .into_iter()
            .flatten()
            .map(|d| d.join("cgroup.procs"))
            .collect()
    }

    /// What the controllers counted since this use began.
    pub fn stats(&self) -> Stats {
        let (base, counters) = (self.baseline, self.counters());
        let mut stats = Stats::default();
        if self.memory.is_some() {
            stats.oom_kills = read_at_start(counters.oom_control.as_ref())
                .and_then(|t| field(&t, "oom_kill "))
                .unwrap_or(0)
                .saturating_sub(base.oom_kills);
            stats.peak_memory = read_at_start(counters.max_usage.as_ref())
                .and_then(|t| t.trim().parse::<u64>().ok())
                .map(|peak| peak.saturating_sub(base.memory));
        }
        if self.pids.is_some() {
            stats.pids_refused = read_at_start(counters.pids_events.as_ref())
                .and_then(|t| field(&t, "max "))
                .unwrap_or(0)
                .saturating_sub(base.pids_refused);
        }
        stats
    }

    /// Removes the cgroups. The kernel refuses while a killed process is still
    /// being torn down, so this retries for a short while.
    pub fn remove(self) {
        for dir in [self.memory, self.pids].into_iter().flatten() {
            for attempt in 0..200 {
                match std::fs::remove_dir(&dir) {
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < 199 => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        tracing::warn!(dir = %dir.display(), error = %e, "cannot remove cgroup");
                        break;
                    }
                    _ => break,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
35 24 0:30 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate
36 24 0:31 / /sys/fs/cgroup/memory rw,nosuid shared:11 - cgroup cgroup rw,memory
37 24 0:32 / /sys/fs/cgroup/pids rw,nosuid shared:12 - cgroup cgroup rw,pids
38 24 0:33 / /sys/fs/cgroup/cpu,cpuacct rw shared:13 - cgroup cgroup rw,cpu,cpuacct";

    const OWN: &str = "\
12:pids:/user.slice
11:memory:/user.slice/session-1.scope
0::/user.slice/session-1.scope";

    #[test]
    fn v1_controllers_are_found_under_our_own_cgroup() {
        assert_eq!(
            v1_base(MOUNTINFO, OWN, "memory"),
            Some(PathBuf::from(
                "/sys/fs/cgroup/memory/user.slice/session-1.scope"
            ))
        );
        assert_eq!(
            v1_base(MOUNTINFO, OWN, "pids"),
            Some(PathBuf::from("/sys/fs/cgroup/pids/user.slice"))
        );
    }

    #[test]
    fn a_controller_that_is_not_mounted_is_absent() {
        assert_eq!(v1_base(MOUNTINFO, OWN, "cpuset"), None);
    }
}
