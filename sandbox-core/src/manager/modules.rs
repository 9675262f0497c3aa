//! Module versions: each named module of a sandbox (a script, a built
//! artifact) has numbered versions whose bytes are stored once, by sha256,
//! under `objects/`; one version per module is active and appears in the
//! sandbox's code directory under the module's name.
//!
//! The code directory holds hard links to the objects (copies where the file
//! system refuses links), replaced by rename so that a process that opened the
//! old version keeps reading the old bytes. Objects are read-only files; a
//! rollback reads the object back and checks its sha256 before activating it,
//! so it restores exactly the bytes that were installed or reports the object
//! as corrupt.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::error::{ManagerError, Result};
use super::name::validate_module_name;
use super::store::{self, SandboxPaths, StateDir};
use super::{Manager, Sandbox, Shared};

/// One version of a module.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ModuleVersion {
    /// Its number: 1 for the first, then one more for each new content.
    pub version: u32,
    /// The sha256 of its bytes, in hexadecimal.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was installed.
    pub created_at: SystemTime,
}

/// The seed's `get_version_history` result: the active version, how many
/// there are, and each one's facts (oldest first).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VersionHistory {
    /// The module.
    pub module: String,
    /// The active version (`None` when no version is active).
    pub current_version: Option<u32>,
    /// Number of versions.
    pub total_versions: u32,
    /// Every version, oldest first.
    pub versions: Vec<ModuleVersion>,
}

/// `modules.json`: every module of a sandbox.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct ModulesRecord {
    pub modules: BTreeMap<String, ModuleRecord>,
}

/// The versions of one module and the active one.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct ModuleRecord {
    pub current: Option<u32>,
    pub versions: Vec<ModuleVersion>,
}

impl ModuleRecord {
    fn get(&self, version: u32) -> Option<&ModuleVersion> {
        version
            .checked_sub(1)
            .and_then(|i| self.versions.get(i as usize))
    }

    fn current_hash(&self) -> Option<&str> {
        self.current
            .and_then(|v| self.get(v))
            .map(|v| v.sha256.as_str())
    }
}

impl ModulesRecord {
    /// Every object this sandbox refers to.
    pub fn hashes(&self) -> impl Iterator<Item = String> + '_ {
        self.modules
            .values()
            .flat_map(|m| m.versions.iter().map(|v| v.sha256.clone()))
    }

    /// The active version of each module.
    pub fn active(&self) -> BTreeMap<String, Option<u32>> {
        self.modules
            .iter()
            .map(|(name, m)| (name.clone(), m.current))
            .collect()
    }
}

/// Where the object with `hash` lives.
pub(crate) fn object_path(dir: &StateDir, hash: &str) -> PathBuf {
    let (fan, rest) = hash.split_at(2.min(hash.len()));
    dir.objects().join(fan).join(rest)
}

/// Stores `bytes` as an object (once) and returns its sha256.
fn put_object(dir: &StateDir, bytes: &[u8]) -> Result<String> {
    let hash = store::sha256_hex(bytes);
    let path = object_path(dir, &hash);
    if path.exists() {
        return Ok(hash);
    }
    let parent = path.parent().expect("objects have a fan-out directory");
    store::create_dir_all(parent)?;
    store::write_atomic(&path, bytes)?;
    set_read_only(&path)?;
    Ok(hash)
}

/// The bytes of object `hash`, checked against it.
fn read_object(dir: &StateDir, hash: &str) -> Result<Vec<u8>> {
    let path = object_path(dir, hash);
    let bytes = fs::read(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ManagerError::corrupt(&path, "module object missing"),
        _ => ManagerError::io("reading", &path, e),
    })?;
    let actual = store::sha256_hex(&bytes);
    if actual != hash {
        return Err(ManagerError::corrupt(
            &path,
            format!("module object content has sha256 {actual}, expected {hash}"),
        ));
    }
    Ok(bytes)
}

fn set_read_only(path: &Path) -> Result<()> {
    let mut perms = fs::metadata(path)
        .map_err(|e| ManagerError::io("reading metadata of", path, e))?
        .permissions();
    perms.set_readonly(true);
    fs::set_permissions(path, perms).map_err(|e| ManagerError::io("making read-only", path, e))
}

/// Puts object `hash` in the code directory as `module`, replacing the previous file by rename.
fn link_active(dir: &StateDir, paths: &SandboxPaths, module: &str, hash: &str) -> Result<()> {
    let object = object_path(dir, hash);
    let target = paths.code().join(module);
    let tmp = store::temp_sibling(&target, "link");
    if fs::hard_link(&object, &tmp).is_err() {
        // Another file system or no link permission: a read-only copy serves as well.
        fs::copy(&object, &tmp).map_err(|e| ManagerError::io("copying", &object, e))?;
        set_read_only(&tmp)?;
    }
    fs::rename(&tmp, &target).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        ManagerError::io("activating", &target, e)
    })
}

fn unlink_active(paths: &SandboxPaths, module: &str) -> Result<()> {
    let target = paths.code().join(module);
    match fs::remove_file(&target) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(ManagerError::io("deactivating", &target, e))
        }
        _ => Ok(()),
    }
}

/// Makes the code directory match the record: after a crash between saving
/// `modules.json` and relinking, the record wins.
pub(crate) fn materialise_all(dir: &StateDir, sandbox: &Sandbox) -> Result<()> {
    let code = sandbox.paths.code();
    store::create_dir_all(&code)?;
    let active: BTreeMap<&str, &str> = sandbox
        .modules
        .modules
        .iter()
        .filter_map(|(name, m)| m.current_hash().map(|h| (name.as_str(), h)))
        .collect();
    let entries = fs::read_dir(&code).map_err(|e| ManagerError::io("listing", &code, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !active.contains_key(name.as_str()) {
            let _ = fs::remove_file(entry.path());
        }
    }
    for (module, hash) in active {
        link_active(dir, &sandbox.paths, module, hash)?;
    }
    Ok(())
}

/// Removes the objects in `hashes` (and fan-out directories left empty).
pub(crate) fn remove_objects(dir: &StateDir, hashes: impl Iterator<Item = String>) -> Result<()> {
    for hash in hashes.collect::<BTreeSet<_>>() {
        let path = object_path(dir, &hash);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(ManagerError::io("removing", &path, e))
            }
            _ => {}
        }
        if let Some(parent) = path.parent() {
            // Fails harmlessly while other objects share the fan-out directory.
            let _ = fs::remove_dir(parent);
        }
    }
    Ok(())
}

/// Removes every object not in `keep`.
pub(crate) fn collect_garbage(dir: &StateDir, keep: &BTreeSet<String>) -> Result<()> {
    let root = dir.objects();
    let mut garbage = Vec::new();
    for fan in fs::read_dir(&root)
        .map_err(|e| ManagerError::io("listing", &root, e))?
        .flatten()
    {
        let fan_name = fan.file_name().to_string_lossy().into_owned();
        for obj in fs::read_dir(fan.path()).into_iter().flatten().flatten() {
            let hash = format!("{fan_name}{}", obj.file_name().to_string_lossy());
            if !keep.contains(&hash) {
                garbage.push(hash);
            }
        }
    }
    remove_objects(dir, garbage.into_iter())
}

impl Shared {
    /// Adds `bytes` as a new version of `module` unless they equal the active
    /// version. Returns (active version, version holding these bytes, whether it is new).
    pub(crate) fn add_version(
        &self,
        name: &str,
        module: &str,
        bytes: &[u8],
    ) -> Result<(Option<u32>, u32, bool)> {
        validate_module_name(module)?;
        // Stored before the record refers to it; an object left unreferenced by
        // a failure below is collected with the last sandbox using the state dir.
        let hash = put_object(&self.dir, bytes)?;
        self.with(name, |sb| {
            let mut modules = sb.modules.clone();
            let record = modules.modules.entry(module.to_string()).or_default();
            let from = record.current;
            if record.current_hash() == Some(hash.as_str()) {
                return Ok((from, from.expect("a current hash has a version"), false));
            }
            let version = record.versions.len() as u32 + 1;
            record.versions.push(ModuleVersion {
                version,
                sha256: hash.clone(),
                size: bytes.len() as u64,
                created_at: SystemTime::now(),
            });
            store::save(&sb.paths.modules(), "modules", &modules)?;
            sb.modules = modules;
            Ok((from, version, true))
        })
    }

    /// Makes `version` (or none) the active version of `module`: saves the
    /// record, then updates the code directory. With `verify`, the object's
    /// bytes are checked against its hash first. Returns the previous version.
    pub(crate) fn activate(
        &self,
        name: &str,
        module: &str,
        version: Option<u32>,
        verify: bool,
    ) -> Result<Option<u32>> {
        self.with(name, |sb| {
            let record =
                sb.modules
                    .modules
                    .get(module)
                    .ok_or_else(|| ManagerError::ModuleNotFound {
                        sandbox: name.to_string(),
                        module: module.to_string(),
                    })?;
            let previous = record.current;
            let hash = match version {
                Some(v) => {
                    let found = record.get(v).ok_or(ManagerError::VersionNotFound {
                        sandbox: name.to_string(),
                        module: module.to_string(),
                        version: v,
                        total: record.versions.len() as u32,
                    })?;
                    if verify {
                        read_object(&self.dir, &found.sha256)?;
                    }
                    Some(found.sha256.clone())
                }
                None => None,
            };
            if previous != version {
                let mut modules = sb.modules.clone();
                modules
                    .modules
                    .get_mut(module)
                    .expect("checked above")
                    .current = version;
                store::save(&sb.paths.modules(), "modules", &modules)?;
                sb.modules = modules;
            }
            match hash {
                Some(hash) => link_active(&self.dir, &sb.paths, module, &hash)?,
                None => unlink_active(&sb.paths, module)?,
            }
            Ok(previous)
        })
    }

    fn module<T>(
        &self,
        name: &str,
        module: &str,
        f: impl FnOnce(&ModuleRecord) -> Result<T>,
    ) -> Result<T> {
        self.with(name, |sb| match sb.modules.modules.get(module) {
            Some(record) => f(record),
            None => Err(ManagerError::ModuleNotFound {
                sandbox: name.to_string(),
                module: module.to_string(),
            }),
        })
    }
}

impl Manager {
    /// The active version of `module` (the seed's `get_module_version`).
    pub fn get_module_version(&self, name: &str, module: &str) -> Result<u32> {
        self.shared.module(name, module, |m| {
            m.current.ok_or_else(|| ManagerError::ModuleNotFound {
                sandbox: name.to_string(),
                module: module.to_string(),
            })
        })
    }

    /// Every version of `module`, oldest first.
    pub fn list_module_versions(&self, name: &str, module: &str) -> Result<Vec<ModuleVersion>> {
        self.shared.module(name, module, |m| Ok(m.versions.clone()))
    }

    /// The active version, the number of versions and each one's facts.
    pub fn get_version_history(&self, name: &str, module: &str) -> Result<VersionHistory> {
        self.shared.module(name, module, |m| {
            Ok(VersionHistory {
                module: module.to_string(),
                current_version: m.current,
                total_versions: m.versions.len() as u32,
                versions: m.versions.clone(),
            })
        })
    }

    /// The modules of sandbox `name` with their active versions.
    pub fn modules(&self, name: &str) -> Result<BTreeMap<String, Option<u32>>> {
        self.shared.with(name, |sb| Ok(sb.modules.active()))
    }

    /// The bytes of `version` of `module` (the active one when `None`),
    /// checked against their sha256.
    pub fn module_bytes(&self, name: &str, module: &str, version: Option<u32>) -> Result<Vec<u8>> {
        let hash = self.shared.module(name, module, |m| {
            let v = version
                .or(m.current)
                .ok_or_else(|| ManagerError::ModuleNotFound {
                    sandbox: name.to_string(),
                    module: module.to_string(),
                })?;
            m.get(v)
                .map(|found| found.sha256.clone())
                .ok_or(ManagerError::VersionNotFound {
                    sandbox: name.to_string(),
                    module: module.to_string(),
                    version: v,
                    total: m.versions.len() as u32,
                })
        })?;
        read_object(&self.shared.dir, &hash)
    }

    /// The directory whose files are the active module versions, named after
    /// the modules. Evaluations and the service see it (read-only) at the
    /// path in `SANDBOX_CODE_DIR`.
    pub fn code_dir(&self, name: &str) -> Result<PathBuf> {
        self.shared.with(name, |sb| Ok(sb.paths.code()))
    }
}
