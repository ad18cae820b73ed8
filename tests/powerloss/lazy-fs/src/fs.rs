//! The FUSE file system: a pass-through of a backing folder whose file data becomes durable
//! only on `fsync`/`fdatasync`.
//!
//! - **Data** (`write`, truncation by `setattr` or `open(O_TRUNC)`, `fallocate`) is kept in
//!   memory per backing inode ([`Unsynced`]); reads merge it over the backing file, so the
//!   program sees its own writes, as with a page cache.
//! - **Durability**: `fsync`/`fdatasync` of any handle of a file writes that file's unsynced
//!   data to the backing file (and, unless disabled, fsyncs the backing file). `flush` (every
//!   `close`) and `release` make nothing durable. `sync_file_range(2)` never reaches a FUSE
//!   file system (there are no dirty pages: writes go through to the daemon at once), so it
//!   makes nothing durable either, exactly like on a real disk after a power loss.
//! - **Metadata** (create, mkdir, mknod, unlink, rmdir, rename, link, symlink, chmod, chown,
//!   times) passes through to the backing folder at once, as in LazyFS: a missing directory
//!   fsync is therefore not caught.
//! - **Power loss** ([`LazyFs::lose_power`]): every unsynced byte and size change is dropped,
//!   and from then on every operation that would change the backing folder fails with `EIO`
//!   (the machine is off); reads still see the backing (durable) state. Remounting is the
//!   reboot.
//!
//! Inodes are tracked by `O_PATH` descriptors of the backing inodes, so renames, unlinked open
//! files and hard links need no path bookkeeping; a backing inode is identified by its
//! (device, inode number), and its unsynced data is shared by all its handles and names.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions, Permissions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, BsdFileFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
    WriteFlags,
};
use nix::fcntl::{openat, readlinkat, renameat, renameat2, OFlag, AT_FDCWD};
use nix::sys::stat::{fstat, mkdirat, mknodat, FileStat, Mode, SFlag};
use nix::unistd::{linkat, symlinkat, unlinkat, UnlinkatFlags};

use crate::unsynced::Unsynced;

/// How long the kernel may cache names and attributes. Every change goes through this file
/// system, so the kernel's cache stays right; the backing folder is only changed directly while
/// it is not mounted.
const TTL: Duration = Duration::from_secs(1);

/// A backing inode: (device, inode number).
type Key = (u64, u64);

/// A FUSE inode: the backing inode and how many lookups the kernel holds on it.
struct Node {
    key: Key,
    /// `O_PATH` descriptor of the backing inode.
    fd: Arc<OwnedFd>,
    lookups: u64,
}

#[derive(Default)]
struct Inodes {
    nodes: HashMap<u64, Node>,
    by_key: HashMap<Key, u64>,
    next: u64,
}

/// An open file or directory.
enum Handle {
    File {
        /// The backing file, always opened read-write (the kernel enforces the program's
        /// access mode), without `O_APPEND` (the kernel computes append offsets itself).
        file: Arc<File>,
        key: Key,
        /// Opened with `O_SYNC`/`O_DSYNC`: every write is synced at once.
        sync: bool,
    },
    Dir {
        /// The listing taken at `opendir`: (inode number, type, name).
        entries: Vec<(u64, FileType, OsString)>,
    },
}

/// What a `setattr` changes.
struct SetAttr {
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
    size: Option<u64>,
    atime: Option<TimeOrNow>,
    mtime: Option<TimeOrNow>,
    fh: Option<FileHandle>,
}

/// A file's unsynced state and a backing handle to apply it through.
struct Entry {
    file: Arc<File>,
    data: Unsynced,
}

/// Counters, reported on exit.
#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) writes: AtomicU64,
    pub(crate) bytes_written: AtomicU64,
    pub(crate) syncs: AtomicU64,
    pub(crate) bytes_synced: AtomicU64,
}

/// The file system. See the module documentation.
pub(crate) struct LazyFs {
    inodes: Mutex<Inodes>,
    handles: Mutex<HashMap<u64, Arc<Handle>>>,
    next_handle: AtomicU64,
    unsynced: Mutex<HashMap<Key, Arc<Mutex<Entry>>>>,
    /// `true` once the power is lost. Every changing operation holds it for reading from its
    /// check to its end, so a power loss (which takes it for writing) falls between operations.
    power_lost: RwLock<bool>,
    /// Whether an `fsync` also fsyncs the backing file (off: only written to it).
    sync_backing: bool,
    /// Backing paths ending in one of these: their fsyncs succeed without making anything
    /// durable (a missing fsync, to check that the driver catches one).
    ignore_fsync: Vec<String>,
    pub(crate) stats: Stats,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn nix_errno(e: nix::errno::Errno) -> Errno {
    Errno::from_i32(e as i32)
}

fn io_errno(e: io::Error) -> Errno {
    e.raw_os_error().map_or(Errno::EIO, Errno::from_i32)
}

/// `/proc/self/fd/N`: opening it reopens the inode behind descriptor N (even unlinked).
fn proc_path(fd: &impl AsRawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

fn file_type(mode: u32) -> FileType {
    match SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFDIR => FileType::Directory,
        SFlag::S_IFLNK => FileType::Symlink,
        SFlag::S_IFCHR => FileType::CharDevice,
        SFlag::S_IFBLK => FileType::BlockDevice,
        SFlag::S_IFIFO => FileType::NamedPipe,
        SFlag::S_IFSOCK => FileType::Socket,
        _ => FileType::RegularFile,
    }
}

fn time(seconds: i64, nanos: i64) -> SystemTime {
    let nanos = nanos.clamp(0, 999_999_999) as u32;
    if seconds >= 0 {
        UNIX_EPOCH + Duration::new(seconds as u64, nanos)
    } else {
        UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs())
            + Duration::from_nanos(nanos.into())
    }
}

fn key_of(stat: &FileStat) -> Key {
    (stat.st_dev, stat.st_ino)
}

fn has_flag(flags: i32, flag: OFlag) -> bool {
    flags & flag.bits() != 0
}

impl LazyFs {
    /// The file system over the folder `backing`.
    pub(crate) fn new(
        backing: &Path,
        sync_backing: bool,
        ignore_fsync: Vec<String>,
    ) -> io::Result<LazyFs> {
        let fd = nix::fcntl::open(
            backing,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(io::Error::from)?;
        let stat = fstat(&fd).map_err(io::Error::from)?;
        let mut inodes = Inodes {
            next: INodeNo::ROOT.0 + 1,
            ..Inodes::default()
        };
        inodes.by_key.insert(key_of(&stat), INodeNo::ROOT.0);
        inodes.nodes.insert(
            INodeNo::ROOT.0,
            Node {
                key: key_of(&stat),
                fd: Arc::new(fd),
                lookups: u64::MAX / 2,
            },
        );
        Ok(LazyFs {
            inodes: Mutex::new(inodes),
            handles: Mutex::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
            unsynced: Mutex::new(HashMap::new()),
            power_lost: RwLock::new(false),
            sync_backing,
            ignore_fsync,
            stats: Stats::default(),
        })
    }

    /// Drops every unsynced byte and size change, and refuses every change from now on.
    /// Returns (bytes dropped, files that had unsynced changes).
    pub(crate) fn lose_power(&self) -> (u64, u64) {
        let mut lost = self.power_lost.write().unwrap_or_else(|p| p.into_inner());
        let entries: Vec<_> = lock(&self.unsynced).drain().collect();
        let (mut bytes, mut files) = (0, 0);
        for (_, entry) in entries {
            let entry = lock(&entry);
            if entry.data.is_dirty() {
                files += 1;
                bytes += entry.data.dirty_bytes();
                // For the log: which file lost what (the backing path, or "… (deleted)").
                let name = std::fs::read_link(proc_path(&*entry.file))
                    .map_or_else(|_| "?".into(), |p| p.display().to_string());
                let durable = entry.file.metadata().map_or(0, |m| m.len());
                eprintln!(
                    "lazy-fs: power loss: {name}: {} unsynced bytes dropped, size {} -> {durable}",
                    entry.data.dirty_bytes(),
                    entry.data.size(),
                );
            }
        }
        *lost = true;
        (bytes, files)
    }

    /// Syncs every file's unsynced data (what `sync(2)` would do). Returns (bytes, files).
    pub(crate) fn sync_all(&self) -> io::Result<(u64, u64)> {
        let _power = self
            .alive()
            .map_err(|_| io::Error::other("power is lost"))?;
        let entries: Vec<_> = lock(&self.unsynced).values().cloned().collect();
        let (mut bytes, mut files) = (0, 0);
        for entry in entries {
            let mut entry = lock(&entry);
            if entry.data.is_dirty() {
                files += 1;
                let Entry { file, data } = &mut *entry;
                bytes += data.apply(file)?;
                if self.sync_backing {
                    file.sync_all()?;
                }
            }
        }
        Ok((bytes, files))
    }

    /// The power guard for a changing operation, or `EIO` once the power is lost.
    fn alive(&self) -> Result<RwLockReadGuard<'_, bool>, Errno> {
        let guard = self.power_lost.read().unwrap_or_else(|p| p.into_inner());
        if *guard {
            return Err(Errno::EIO);
        }
        Ok(guard)
    }

    fn node(&self, ino: INodeNo) -> Result<(Key, Arc<OwnedFd>), Errno> {
        let inodes = lock(&self.inodes);
        let node = inodes.nodes.get(&ino.0).ok_or(Errno::ESTALE)?;
        Ok((node.key, Arc::clone(&node.fd)))
    }

    fn node_fd(&self, ino: INodeNo) -> Result<Arc<OwnedFd>, Errno> {
        Ok(self.node(ino)?.1)
    }

    /// Registers a lookup of the backing inode behind the `O_PATH` descriptor `fd`.
    fn remember(&self, fd: OwnedFd) -> Result<(INodeNo, FileStat), Errno> {
        let stat = fstat(&fd).map_err(nix_errno)?;
        let key = key_of(&stat);
        let mut inodes = lock(&self.inodes);
        if let Some(&ino) = inodes.by_key.get(&key) {
            if let Some(node) = inodes.nodes.get_mut(&ino) {
                node.lookups += 1;
                return Ok((INodeNo(ino), stat));
            }
        }
        let ino = inodes.next;
        inodes.next += 1;
        inodes.by_key.insert(key, ino);
        inodes.nodes.insert(
            ino,
            Node {
                key,
                fd: Arc::new(fd),
                lookups: 1,
            },
        );
        Ok((INodeNo(ino), stat))
    }

    fn unsynced_size(&self, key: Key) -> Option<u64> {
        let entry = lock(&self.unsynced).get(&key).cloned()?;
        let size = lock(&entry).data.size();
        Some(size)
    }

    /// The attributes the program sees: the backing inode's, with the unsynced size.
    fn attr(&self, ino: INodeNo, stat: &FileStat) -> FileAttr {
        let size = self
            .unsynced_size(key_of(stat))
            .unwrap_or(stat.st_size.max(0) as u64);
        FileAttr {
            ino,
            size,
            blocks: size.div_ceil(512),
            atime: time(stat.st_atime, stat.st_atime_nsec),
            mtime: time(stat.st_mtime, stat.st_mtime_nsec),
            ctime: time(stat.st_ctime, stat.st_ctime_nsec),
            crtime: time(stat.st_ctime, stat.st_ctime_nsec),
            kind: file_type(stat.st_mode),
            perm: (stat.st_mode & 0o7777) as u16,
            nlink: stat.st_nlink as u32,
            uid: stat.st_uid,
            gid: stat.st_gid,
            rdev: stat.st_rdev as u32,
            blksize: 4096,
            flags: 0,
        }
    }

    fn stat_attr(&self, ino: INodeNo) -> Result<FileAttr, Errno> {
        let fd = self.node_fd(ino)?;
        let stat = fstat(&*fd).map_err(nix_errno)?;
        Ok(self.attr(ino, &stat))
    }

    /// The unsynced entry of `key`, made over `file` if there is none yet.
    fn entry(
        &self,
        key: Key,
        file: impl FnOnce() -> Result<Arc<File>, Errno>,
    ) -> Result<Arc<Mutex<Entry>>, Errno> {
        if let Some(entry) = lock(&self.unsynced).get(&key) {
            return Ok(Arc::clone(entry));
        }
        let file = file()?;
        let size = file.metadata().map_err(io_errno)?.len();
        let mut map = lock(&self.unsynced);
        let entry = map.entry(key).or_insert_with(|| {
            Arc::new(Mutex::new(Entry {
                file,
                data: Unsynced::new(size),
            }))
        });
        Ok(Arc::clone(entry))
    }

    /// A read-write backing handle of the inode behind the `O_PATH` descriptor `fd`.
    fn reopen(fd: &OwnedFd) -> Result<Arc<File>, Errno> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(proc_path(fd))
            .map(Arc::new)
            .map_err(io_errno)
    }

    fn handle(&self, fh: FileHandle) -> Result<Arc<Handle>, Errno> {
        lock(&self.handles).get(&fh.0).cloned().ok_or(Errno::EBADF)
    }

    fn file_handle(&self, fh: FileHandle) -> Result<(Arc<File>, Key, bool), Errno> {
        match &*self.handle(fh)? {
            Handle::File { file, key, sync } => Ok((Arc::clone(file), *key, *sync)),
            Handle::Dir { .. } => Err(Errno::EISDIR),
        }
    }

    fn add_handle(&self, handle: Handle) -> FileHandle {
        let fh = self.next_handle.fetch_add(1, Ordering::Relaxed);
        lock(&self.handles).insert(fh, Arc::new(handle));
        FileHandle(fh)
    }

    /// Makes `key`'s unsynced data durable: written to the backing file, which `file` (or the
    /// entry's handle) then fsyncs unless that is disabled.
    fn sync_key(&self, key: Key, file: Option<&File>, datasync: bool) -> Result<(), Errno> {
        self.stats.syncs.fetch_add(1, Ordering::Relaxed);
        let entry = lock(&self.unsynced).get(&key).cloned();
        let sync = |f: &File| {
            if datasync {
                f.sync_data()
            } else {
                f.sync_all()
            }
        };
        if let Some(entry) = entry {
            let mut entry = lock(&entry);
            let Entry { file, data } = &mut *entry;
            if !self.ignore_fsync.is_empty() {
                let path = std::fs::read_link(proc_path(&**file)).unwrap_or_default();
                let path = path.to_string_lossy();
                if self
                    .ignore_fsync
                    .iter()
                    .any(|name| path.ends_with(name.as_str()))
                {
                    return Ok(());
                }
            }
            let bytes = data.apply(file).map_err(io_errno)?;
            self.stats.bytes_synced.fetch_add(bytes, Ordering::Relaxed);
            if self.sync_backing {
                sync(file).map_err(io_errno)?;
            }
        } else if let (true, Some(file)) = (self.sync_backing, file) {
            sync(file).map_err(io_errno)?;
        }
        Ok(())
    }

    fn set_size(&self, ino: INodeNo, fh: Option<FileHandle>, size: u64) -> Result<(), Errno> {
        let (key, fd) = self.node(ino)?;
        let handle_file = match fh {
            Some(fh) => self.file_handle(fh).ok().map(|(file, _, _)| file),
            None => None,
        };
        let entry = self.entry(key, || match handle_file {
            Some(file) => Ok(file),
            None => Self::reopen(&fd),
        })?;
        lock(&entry).data.set_size(size);
        Ok(())
    }

    fn do_lookup(&self, parent: INodeNo, name: &OsStr) -> Result<FileAttr, Errno> {
        let parent_fd = self.node_fd(parent)?;
        let fd = openat(
            &*parent_fd,
            name,
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(nix_errno)?;
        let (ino, stat) = self.remember(fd)?;
        Ok(self.attr(ino, &stat))
    }

    fn do_setattr(&self, ino: INodeNo, changes: SetAttr) -> Result<FileAttr, Errno> {
        let SetAttr {
            mode,
            uid,
            gid,
            size,
            atime,
            mtime,
            fh,
        } = changes;
        let _power = self.alive()?;
        let fd = self.node_fd(ino)?;
        let path = proc_path(&*fd);
        if let Some(mode) = mode {
            std::fs::set_permissions(&path, Permissions::from_mode(mode & 0o7777))
                .map_err(io_errno)?;
        }
        if uid.is_some() || gid.is_some() {
            std::os::unix::fs::chown(&path, uid, gid).map_err(io_errno)?;
        }
        if let Some(size) = size {
            self.set_size(ino, fh, size)?;
        }
        if atime.is_some() || mtime.is_some() {
            let at = |t: TimeOrNow| match t {
                TimeOrNow::SpecificTime(t) => t,
                TimeOrNow::Now => SystemTime::now(),
            };
            let mut times = std::fs::FileTimes::new();
            if let Some(t) = atime {
                times = times.set_accessed(at(t));
            }
            if let Some(t) = mtime {
                times = times.set_modified(at(t));
            }
            File::open(&path)
                .and_then(|f| f.set_times(times))
                .map_err(io_errno)?;
        }
        self.stat_attr(ino)
    }

    fn do_open(&self, ino: INodeNo, flags: OpenFlags) -> Result<FileHandle, Errno> {
        let (key, fd) = self.node(ino)?;
        let file = Self::reopen(&fd)?;
        if has_flag(flags.0, OFlag::O_TRUNC) {
            let _power = self.alive()?;
            let entry = self.entry(key, || Ok(Arc::clone(&file)))?;
            lock(&entry).data.set_size(0);
        }
        let sync = has_flag(flags.0, OFlag::O_SYNC) || has_flag(flags.0, OFlag::O_DSYNC);
        Ok(self.add_handle(Handle::File { file, key, sync }))
    }

    fn do_create(
        &self,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
    ) -> Result<(FileAttr, FileHandle), Errno> {
        let _power = self.alive()?;
        let parent_fd = self.node_fd(parent)?;
        let mut oflags = OFlag::O_CREAT | OFlag::O_RDWR | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        if has_flag(flags, OFlag::O_EXCL) {
            oflags |= OFlag::O_EXCL;
        }
        let fd = openat(
            &*parent_fd,
            name,
            oflags,
            Mode::from_bits_truncate(mode & !umask & 0o7777),
        )
        .map_err(nix_errno)?;
        let file = Arc::new(File::from(fd));
        let path_fd = nix::fcntl::open(
            &proc_path(&*file),
            OFlag::O_PATH | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(nix_errno)?;
        let (ino, stat) = self.remember(path_fd)?;
        let key = key_of(&stat);
        if has_flag(flags, OFlag::O_TRUNC) {
            let entry = self.entry(key, || Ok(Arc::clone(&file)))?;
            lock(&entry).data.set_size(0);
        }
        let sync = has_flag(flags, OFlag::O_SYNC) || has_flag(flags, OFlag::O_DSYNC);
        let fh = self.add_handle(Handle::File { file, key, sync });
        Ok((self.attr(ino, &stat), fh))
    }

    fn do_read(&self, fh: FileHandle, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let (file, key, _) = self.file_handle(fh)?;
        let entry = lock(&self.unsynced).get(&key).cloned();
        let read_backing = |buf: &mut [u8], at: u64| file.read_at(buf, at);
        match entry {
            Some(entry) => lock(&entry).data.read(offset, size.into(), read_backing),
            None => Unsynced::new(file.metadata().map_err(io_errno)?.len()).read(
                offset,
                size.into(),
                read_backing,
            ),
        }
        .map_err(io_errno)
    }

    fn do_write(&self, fh: FileHandle, offset: u64, data: &[u8]) -> Result<u32, Errno> {
        let _power = self.alive()?;
        let (file, key, sync) = self.file_handle(fh)?;
        let entry = self.entry(key, || Ok(Arc::clone(&file)))?;
        lock(&entry).data.write(offset, data);
        self.stats.writes.fetch_add(1, Ordering::Relaxed);
        self.stats
            .bytes_written
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        if sync {
            self.sync_key(key, Some(&file), true)?;
        }
        u32::try_from(data.len()).map_err(|_| Errno::EINVAL)
    }

    fn do_opendir(&self, ino: INodeNo) -> Result<FileHandle, Errno> {
        let fd = self.node_fd(ino)?;
        let mut entries = Vec::new();
        for item in std::fs::read_dir(proc_path(&*fd)).map_err(io_errno)? {
            let item = item.map_err(io_errno)?;
            let kind = item
                .file_type()
                .ok()
                .and_then(FileType::from_std)
                .unwrap_or(FileType::RegularFile);
            use std::os::unix::fs::DirEntryExt;
            entries.push((item.ino().max(2), kind, item.file_name()));
        }
        entries.insert(0, (1, FileType::Directory, OsString::from("..")));
        entries.insert(0, (1, FileType::Directory, OsString::from(".")));
        Ok(self.add_handle(Handle::Dir { entries }))
    }

    fn do_forget(&self, ino: INodeNo, count: u64) {
        if ino == INodeNo::ROOT {
            return;
        }
        let forgotten = {
            let mut inodes = lock(&self.inodes);
            let Some(node) = inodes.nodes.get_mut(&ino.0) else {
                return;
            };
            node.lookups = node.lookups.saturating_sub(count);
            if node.lookups > 0 {
                return;
            }
            let node = inodes.nodes.remove(&ino.0);
            if let Some(node) = &node {
                inodes.by_key.remove(&node.key);
            }
            node
        };
        // A deleted file nobody can reach any more: its unsynced data can never be seen
        // (and its inode number could be reused once the entry's handle closes).
        if let Some(node) = forgotten {
            if fstat(&*node.fd).is_ok_and(|s| s.st_nlink == 0) {
                lock(&self.unsynced).remove(&node.key);
            }
        }
    }
}

/// The mounted file system: shares [`LazyFs`] with the signal loop.
pub(crate) struct Mounted(pub(crate) Arc<LazyFs>);

impl Filesystem for Mounted {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.0.do_lookup(parent, name) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.0.do_forget(ino, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.0.stat_attr(ino) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let changes = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime,
            mtime,
            fh,
        };
        match self.0.do_setattr(ino, changes) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let result = self
            .0
            .node_fd(ino)
            .and_then(|fd| readlinkat(&*fd, "").map_err(nix_errno));
        match result {
            Ok(target) => reply.data(target.as_bytes()),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let result = self.0.alive().and_then(|_power| {
            let parent_fd = self.0.node_fd(parent)?;
            mknodat(
                &*parent_fd,
                name,
                SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits()),
                Mode::from_bits_truncate(mode & !umask & 0o7777),
                rdev.into(),
            )
            .map_err(nix_errno)?;
            self.0.do_lookup(parent, name)
        });
        match result {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let result = self.0.alive().and_then(|_power| {
            let parent_fd = self.0.node_fd(parent)?;
            mkdirat(
                &*parent_fd,
                name,
                Mode::from_bits_truncate(mode & !umask & 0o7777),
            )
            .map_err(nix_errno)?;
            self.0.do_lookup(parent, name)
        });
        match result {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let result = self.0.alive().and_then(|_power| {
            let parent_fd = self.0.node_fd(parent)?;
            unlinkat(&*parent_fd, name, UnlinkatFlags::NoRemoveDir).map_err(nix_errno)
        });
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let result = self.0.alive().and_then(|_power| {
            let parent_fd = self.0.node_fd(parent)?;
            unlinkat(&*parent_fd, name, UnlinkatFlags::RemoveDir).map_err(nix_errno)
        });
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn symlink(
        &self,
        _req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let result = self.0.alive().and_then(|_power| {
            let parent_fd = self.0.node_fd(parent)?;
            symlinkat(target, &*parent_fd, link_name).map_err(nix_errno)?;
            self.0.do_lookup(parent, link_name)
        });
        match result {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let result = self.0.alive().and_then(|_power| {
            let from = self.0.node_fd(parent)?;
            let to = self.0.node_fd(newparent)?;
            if flags.is_empty() {
                renameat(&*from, name, &*to, newname).map_err(nix_errno)
            } else {
                let flags =
                    nix::fcntl::RenameFlags::from_bits(flags.bits()).ok_or(Errno::EINVAL)?;
                renameat2(&*from, name, &*to, newname, flags).map_err(nix_errno)
            }
        });
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let result = self.0.alive().and_then(|_power| {
            let fd = self.0.node_fd(ino)?;
            let to = self.0.node_fd(newparent)?;
            linkat(
                AT_FDCWD,
                &proc_path(&*fd),
                &*to,
                newname,
                nix::fcntl::AtFlags::AT_SYMLINK_FOLLOW,
            )
            .map_err(nix_errno)?;
            self.0.do_lookup(newparent, newname)
        });
        match result {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match self.0.do_open(ino, flags) {
            Ok(fh) => reply.opened(fh, FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.0.do_read(fh, offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.0.do_write(fh, offset, data) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    /// `close(2)`: not durability.
    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        lock(&self.0.handles).remove(&fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let result = self.0.alive().and_then(|_power| {
            let (file, key, _) = self.0.file_handle(fh)?;
            self.0.sync_key(key, Some(&file), datasync)
        });
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.0.do_opendir(ino) {
            Ok(fh) => reply.opened(fh, FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let handle = match self.0.handle(fh) {
            Ok(handle) => handle,
            Err(e) => return reply.error(e),
        };
        let Handle::Dir { entries } = &*handle else {
            return reply.error(Errno::ENOTDIR);
        };
        for (i, (ino, kind, name)) in entries.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(*ino), i as u64 + 1, *kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        lock(&self.0.handles).remove(&fh.0);
        reply.ok();
    }

    /// Metadata already passed through; the backing folder is fsynced unless disabled.
    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let result = self.0.alive().and_then(|_power| {
            self.0.stats.syncs.fetch_add(1, Ordering::Relaxed);
            if self.0.sync_backing {
                let fd = self.0.node_fd(ino)?;
                File::open(proc_path(&*fd))
                    .and_then(|dir| dir.sync_all())
                    .map_err(io_errno)?;
            }
            Ok(())
        });
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let result = self
            .0
            .node_fd(INodeNo::ROOT)
            .and_then(|fd| nix::sys::statvfs::fstatvfs(fd.as_fd()).map_err(nix_errno));
        match result {
            Ok(s) => reply.statfs(
                s.blocks(),
                s.blocks_free(),
                s.blocks_available(),
                s.files(),
                s.files_free(),
                s.block_size() as u32,
                s.name_max() as u32,
                s.fragment_size() as u32,
            ),
            Err(e) => reply.error(e),
        }
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        match self.0.do_create(parent, name, mode, umask, flags) {
            Ok((attr, fh)) => reply.created(&TTL, &attr, Generation(0), fh, FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    /// Mode 0 (allocate, growing the file) and `FALLOC_FL_KEEP_SIZE` (nothing to do: space
    /// is not modelled); the other modes (punching holes, …) are refused.
    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        const KEEP_SIZE: i32 = 1;
        let result = self.0.alive().and_then(|_power| match mode {
            0 => {
                let (file, key, _) = self.0.file_handle(fh)?;
                let entry = self.0.entry(key, || Ok(file))?;
                lock(&entry).data.allocate(offset.saturating_add(length));
                Ok(())
            }
            KEEP_SIZE => self.0.node(ino).map(drop),
            _ => Err(Errno::EOPNOTSUPP),
        });
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }
}
