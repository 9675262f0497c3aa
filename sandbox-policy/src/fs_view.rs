//! The crate's only window onto the filesystem: symlink resolution, file kinds,
//! directory listings (glob expansion) and reading settings files.
//!
//! [`HostFs`] is the real implementation; [`MemFs`] is an in-memory tree for tests
//! (here and in other crates), so that everything derived from a policy can be
//! checked without touching the machine.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

/// What is at a path, without following a final symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link.
    Symlink,
    /// Anything else (socket, device, fifo).
    Other,
}

/// Read-only view of a filesystem.
pub trait FsView {
    /// The absolute path with every symlink resolved; an error when it does not exist.
    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf>;
    /// What is at `path` (a final symlink is reported as [`Kind::Symlink`]), or `None`.
    fn metadata_kind(&self, path: &Path) -> Option<Kind>;
    /// The names in a directory, sorted.
    fn read_dir(&self, path: &Path) -> io::Result<Vec<OsString>>;
    /// The contents of a (settings) file.
    fn read_to_string(&self, path: &Path) -> io::Result<String>;
}

/// The real filesystem of this machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostFs;

impl FsView for HostFs {
    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
        std::fs::canonicalize(path)
    }

    fn metadata_kind(&self, path: &Path) -> Option<Kind> {
        let meta = std::fs::symlink_metadata(path).ok()?;
        let ft = meta.file_type();
        Some(if ft.is_symlink() {
            Kind::Symlink
        } else if ft.is_dir() {
            Kind::Dir
        } else if ft.is_file() {
            Kind::File
        } else {
            Kind::Other
        })
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<OsString>> {
        let mut names = std::fs::read_dir(path)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<Vec<_>>>()?;
        names.sort();
        Ok(names)
    }

    fn read_to_string(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }
}

/// A view that asks another about each path's kind only once, and keeps
/// every question it passed on with its answer ([`FsFacts`]).
///
/// Deriving a plan asks about the same paths many times (a writable root
/// once per protected name beneath it); each question to [`HostFs`] is a
/// system call on the evaluation's path. A plan describes the filesystem as
/// it was when the plan was made, so one answer per path is all it needs.
pub(crate) struct Remembered<'a> {
    fs: &'a dyn FsView,
    kinds: std::cell::RefCell<std::collections::HashMap<PathBuf, Option<Kind>>>,
    facts: std::cell::RefCell<Vec<Fact>>,
}

impl<'a> Remembered<'a> {
    pub(crate) fn new(fs: &'a dyn FsView) -> Self {
        Remembered {
            fs,
            kinds: Default::default(),
            facts: Default::default(),
        }
    }

    /// What was asked of the underlying view, and its answers.
    pub(crate) fn into_facts(self) -> FsFacts {
        FsFacts(self.facts.into_inner())
    }

    /// Keeps `answer` about `path` (an error by its kind) as a fact, and
    /// passes it on.
    fn record<T: Clone>(
        &self,
        path: &Path,
        answer: io::Result<T>,
        fact: fn(PathBuf, Result<T, io::ErrorKind>) -> Fact,
    ) -> io::Result<T> {
        let kept = answer.as_ref().map(Clone::clone).map_err(io::Error::kind);
        self.facts.borrow_mut().push(fact(path.to_path_buf(), kept));
        answer
    }
}

impl FsView for Remembered<'_> {
    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
        self.record(path, self.fs.canonicalize(path), Fact::Canonical)
    }

    fn metadata_kind(&self, path: &Path) -> Option<Kind> {
        if let Some(kind) = self.kinds.borrow().get(path) {
            return *kind;
        }
        let kind = self.fs.metadata_kind(path);
        self.kinds.borrow_mut().insert(path.to_path_buf(), kind);
        self.facts
            .borrow_mut()
            .push(Fact::Kind(path.to_path_buf(), kind));
        kind
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<OsString>> {
        self.record(path, self.fs.read_dir(path), Fact::Listing)
    }

    fn read_to_string(&self, path: &Path) -> io::Result<String> {
        self.record(path, self.fs.read_to_string(path), Fact::Text)
    }
}

/// Everything a derivation learned about the filesystem: each question it
/// asked and the answer it got (errors by their kind).
///
/// A plan is a function of its policy and of these answers alone, so while
/// [`hold`](Self::hold) is true of the filesystem, a plan derived from the
/// same policy then would be the same plan: it can be reused rather than
/// derived again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsFacts(Vec<Fact>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Fact {
    Canonical(PathBuf, Result<PathBuf, io::ErrorKind>),
    Kind(PathBuf, Option<Kind>),
    Listing(PathBuf, Result<Vec<OsString>, io::ErrorKind>),
    Text(PathBuf, Result<String, io::ErrorKind>),
}

impl FsFacts {
    /// Whether `fs` still answers every question as it did.
    pub fn hold(&self, fs: &dyn FsView) -> bool {
        self.0.iter().all(|fact| match fact {
            Fact::Canonical(path, was) => &fs.canonicalize(path).map_err(|e| e.kind()) == was,
            Fact::Kind(path, was) => &fs.metadata_kind(path) == was,
            Fact::Listing(path, was) => &fs.read_dir(path).map_err(|e| e.kind()) == was,
            Fact::Text(path, was) => &fs.read_to_string(path).map_err(|e| e.kind()) == was,
        })
    }

    /// How many questions were asked.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether nothing was asked.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir,
    File(String),
    Symlink(PathBuf),
}

/// An in-memory filesystem tree for tests. Parents are created as needed.
///
/// ```
/// use sandbox_policy::{FsView, Kind, MemFs};
/// use std::path::Path;
/// let fs = MemFs::new().dir("/home/user/project").symlink("/p", "/home/user/project");
/// assert_eq!(fs.canonicalize(Path::new("/p")).unwrap(), Path::new("/home/user/project"));
/// assert_eq!(fs.metadata_kind(Path::new("/p")), Some(Kind::Symlink));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemFs {
    nodes: BTreeMap<PathBuf, Node>,
}

impl MemFs {
    /// A tree holding only `/`.
    pub fn new() -> MemFs {
        let mut nodes = BTreeMap::new();
        nodes.insert(PathBuf::from("/"), Node::Dir);
        MemFs { nodes }
    }

    fn insert(mut self, path: &str, node: Node) -> MemFs {
        let path = PathBuf::from(path);
        for ancestor in path.ancestors().skip(1) {
            self.nodes
                .entry(ancestor.to_path_buf())
                .or_insert(Node::Dir);
        }
        self.nodes.insert(path, node);
        self
    }

    /// Adds a directory.
    pub fn dir(self, path: &str) -> MemFs {
        self.insert(path, Node::Dir)
    }

    /// Adds a file with contents.
    pub fn file(self, path: &str, contents: &str) -> MemFs {
        self.insert(path, Node::File(contents.to_string()))
    }

    /// Adds a symlink to `target` (absolute, or relative to the link's directory).
    pub fn symlink(self, path: &str, target: &str) -> MemFs {
        self.insert(path, Node::Symlink(PathBuf::from(target)))
    }

    fn not_found(path: &Path) -> io::Error {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} not found", path.display()),
        )
    }

    fn resolve(&self, path: &Path, hops: &mut u32) -> io::Result<PathBuf> {
        let mut out = PathBuf::from("/");
        for comp in path.components() {
            match comp {
                Component::Normal(name) => {
                    let next = out.join(name);
                    match self.nodes.get(&next) {
                        None => return Err(MemFs::not_found(&next)),
                        Some(Node::Symlink(target)) => {
                            *hops += 1;
                            if *hops > 40 {
                                return Err(io::Error::other("too many levels of symbolic links"));
                            }
                            out = self.resolve(&out.join(target), hops)?;
                        }
                        Some(_) => out = next,
                    }
                }
                Component::ParentDir => {
                    out.pop();
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

impl FsView for MemFs {
    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
        if !path.is_absolute() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "relative path"));
        }
        self.resolve(path, &mut 0)
    }

    fn metadata_kind(&self, path: &Path) -> Option<Kind> {
        let parent = match path.parent() {
            Some(parent) => self.canonicalize(parent).ok()?,
            None => return Some(Kind::Dir),
        };
        match self.nodes.get(&parent.join(path.file_name()?))? {
            Node::Dir => Some(Kind::Dir),
            Node::File(_) => Some(Kind::File),
            Node::Symlink(_) => Some(Kind::Symlink),
        }
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<OsString>> {
        let dir = self.canonicalize(path)?;
        if self.nodes.get(&dir) != Some(&Node::Dir) {
            return Err(io::Error::other("not a directory"));
        }
        Ok(self
            .nodes
            .keys()
            .filter(|p| p.parent() == Some(dir.as_path()))
            .filter_map(|p| p.file_name().map(|n| n.to_os_string()))
            .collect())
    }

    fn read_to_string(&self, path: &Path) -> io::Result<String> {
        match self.nodes.get(&self.canonicalize(path)?) {
            Some(Node::File(contents)) => Ok(contents.clone()),
            _ => Err(io::Error::other("not a file")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_fs_resolves_relative_symlinks_and_parents() {
        let fs = MemFs::new()
            .dir("/real/dir")
            .symlink("/a/link", "../real")
            .file("/real/dir/f", "x");
        assert_eq!(
            fs.canonicalize(Path::new("/a/link/dir/f")).unwrap(),
            PathBuf::from("/real/dir/f")
        );
        assert_eq!(fs.metadata_kind(Path::new("/a/link/dir")), Some(Kind::Dir));
        assert_eq!(fs.read_to_string(Path::new("/a/link/dir/f")).unwrap(), "x");
        assert!(fs.canonicalize(Path::new("/a/missing")).is_err());
    }

    #[test]
    fn mem_fs_symlink_loops_are_errors() {
        let fs = MemFs::new().symlink("/a", "/b").symlink("/b", "/a");
        assert!(fs.canonicalize(Path::new("/a")).is_err());
    }

    #[test]
    fn mem_fs_lists_a_directory_sorted() {
        let fs = MemFs::new().file("/d/b", "").dir("/d/a").file("/d/a/x", "");
        assert_eq!(
            fs.read_dir(Path::new("/d")).unwrap(),
            vec![OsString::from("a"), OsString::from("b")]
        );
    }

    /// Counts the kind questions that reach the view beneath.
    struct Counting(MemFs, std::cell::Cell<usize>);

    impl FsView for Counting {
        fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
            self.0.canonicalize(path)
        }
        fn metadata_kind(&self, path: &Path) -> Option<Kind> {
            self.1.set(self.1.get() + 1);
            self.0.metadata_kind(path)
        }
        fn read_dir(&self, path: &Path) -> io::Result<Vec<OsString>> {
            self.0.read_dir(path)
        }
        fn read_to_string(&self, path: &Path) -> io::Result<String> {
            self.0.read_to_string(path)
        }
    }

    #[test]
    fn remembered_asks_about_each_path_once_and_answers_the_same() {
        let counting = Counting(MemFs::new().dir("/p"), Default::default());
        let remembered = Remembered::new(&counting);
        for _ in 0..3 {
            assert_eq!(remembered.metadata_kind(Path::new("/p")), Some(Kind::Dir));
            assert_eq!(remembered.metadata_kind(Path::new("/p/.git")), None);
        }
        assert_eq!(counting.1.get(), 2);
    }
}
