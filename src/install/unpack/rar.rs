//! RAR (1.5 to 7.x formats, single and multi-volume) through the `unrar` crate,
//! which binds the C++ UnRAR library.
//!
//! unrar 0.5 can extract a member only to a file or into a `Vec` (whole), so
//! each file member is extracted to a scratch file and handed to the visitor as
//! a `File`; the scratch file is deleted as soon as the member has been
//! visited. Memory stays flat; the cost is one extra write and read per member.
//!
//! UnRAR resolves hard-link targets and file-reference (`rar -oi`) sources
//! relative to the *process's working directory* when extracting to a named
//! file. A crafted archive could therefore make unrar link or copy some other
//! local file into the scratch file. So every scratch file is checked before
//! the visitor sees a byte of it:
//!
//! - it must exist and be a regular file that is not a symlink (unrar creates
//!   no regular file for symlink records; a symlink can never be followed);
//! - it must have exactly one link (a hard link to a file elsewhere has more);
//! - its length must be the recorded size;
//! - its CRC32 (crc32fast) must be the recorded CRC32. Link and reference
//!   records record no CRC (0), so their foreign content cannot match. RAR5
//!   archives made with `rar -htb` record a BLAKE2sp hash instead, and unrar's
//!   header API does not say which hash it hands back (the field then holds the
//!   first four bytes of the BLAKE2sp digest): when the CRC32 does not match in
//!   a RAR5 archive, the BLAKE2sp digest is computed and compared instead.
//!
//! Members split across volumes record no CRC32 of the whole file in their
//! first header, so only unrar's own check (which does cover the whole file)
//! applies to them. unrar verifies every member's checksum itself and reports a
//! mismatch as "bad data", which becomes [`UnpackError::ChecksumFailed`] (unrar
//! deletes the broken output, so no computed value is available).

use std::fs::{self, File};
use std::io::{self, Read, Seek};
use std::path::Path;

use unrar::error::{Code, UnrarError, When};

use super::{MemberData, RawKind, UnpackError, Walker, open_archive};

/// The RAR 5.0 signature; older formats start with `Rar!\x1a\x07\x00`.
const RAR5_SIGNATURE: &[u8; 8] = b"Rar!\x1a\x07\x01\x00";
const HASH_BUFFER: usize = 1 << 20;

/// Whether a `*.rar` file at the game root starts a RAR set (or is a single archive):
/// `name.partN.rar` with N > 1 is a later volume unless unrar says otherwise.
pub(super) fn is_first_volume(file_name: &str, path: &Path) -> bool {
    match part_number(file_name) {
        None | Some(1) => true,
        Some(_) => match unrar::Archive::new(path).open_for_listing() {
            Ok(open) => open.volume_info() != unrar::VolumeInfo::Subsequent,
            Err(_) => false,
        },
    }
}

/// `N` of `name.partN.rar` (case-insensitive), if the name has that shape.
fn part_number(file_name: &str) -> Option<u64> {
    let lower = file_name.to_ascii_lowercase();
    let stem = lower.strip_suffix(".rar")?;
    let (_, digits) = stem.rsplit_once(".part")?;
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub(super) fn walk(walker: &mut Walker<'_, '_>, archive: &Path) -> Result<(), UnpackError> {
    // The C++ UnRAR library opens the archive, and its later volumes, by name itself (the
    // crate takes only a path), so a window between this check and its open remains: the
    // volume handed to it is checked here to be a regular file reached through no symlink
    // (and its signature is read from that handle), but one swapped for a symlink or a FIFO
    // right after, or a later volume swapped at any time, is followed or blocked on by unrar.
    let mut opened = open_archive(archive)?;
    let rar5 = is_rar5(&mut opened).map_err(|err| UnpackError::io(archive, err))?;
    drop(opened);
    // Counting sizes extracts nothing, so it makes no scratch directory (unrar's write errors,
    // the only ones that name the scratch file, cannot happen then).
    let scratch_file = if walker.sizes_only() {
        archive.to_path_buf()
    } else {
        walker.scratch_dir(archive)?.join("member")
    };
    let mut cursor = unrar::Archive::new(archive)
        .open_for_processing()
        .map_err(|err| unrar_error(archive, None, &scratch_file, err))?;
    loop {
        walker.check_cancelled()?;
        let header = match cursor.read_header() {
            Ok(Some(header)) => header,
            Ok(None) => return Ok(()),
            Err(err) => return Err(unrar_error(archive, None, &scratch_file, err)),
        };
        // Skipping a member split across volumes stops at its continuation in the next volume,
        // which unrar lists again (extracting reads past it): counted once, at its first part.
        if walker.sizes_only() && header.entry().is_split_before() {
            cursor = header
                .skip()
                .map_err(|err| unrar_error(archive, None, &scratch_file, err))?;
            continue;
        }
        let entry = header.entry();
        let Some(raw_name) = entry.filename.to_str().map(str::to_owned) else {
            return Err(UnpackError::UnsafePath {
                archive: archive.to_path_buf(),
                entry: entry.filename.to_string_lossy().into_owned(),
            });
        };
        let member = Member {
            size: entry.unpacked_size,
            recorded_crc: entry.file_crc,
            split: entry.is_split(),
            attr: entry.file_attr,
            rar5,
        };
        let kind = if entry.is_directory() {
            RawKind::Dir
        } else if is_unix_symlink(member.attr) {
            RawKind::Unsafe("symlink".to_owned())
        } else {
            RawKind::File
        };
        let encrypted = entry.is_encrypted();
        let admitted = walker.admit(archive, &raw_name, kind.clone())?;
        if kind == RawKind::Dir || walker.sizes_only() {
            cursor = header
                .skip()
                .map_err(|err| unrar_error(archive, Some(&raw_name), &scratch_file, err))?;
            if let Some(admitted) = admitted {
                let data = MemberData {
                    size: member.size,
                    crc32: None,
                    executable: false,
                };
                walker.visit(archive, admitted, data, &mut io::empty())?;
            }
            continue;
        }
        let Some(admitted) = admitted else {
            cursor = header
                .skip()
                .map_err(|err| unrar_error(archive, Some(&raw_name), &scratch_file, err))?;
            continue;
        };
        if encrypted {
            return Err(UnpackError::corrupt(
                archive,
                format!("entry {raw_name:?} is password-protected; lanspread cannot unpack encrypted archives"),
            ));
        }
        cursor = header
            .extract_to(&scratch_file)
            .map_err(|err| unrar_error(archive, Some(&raw_name), &scratch_file, err))?;
        let visited = visit_scratch_file(walker, archive, admitted, &raw_name, &scratch_file, &member);
        let removed = remove_scratch(&scratch_file);
        visited?;
        removed?;
    }
}

struct Member {
    size: u64,
    recorded_crc: u32,
    split: bool,
    attr: u32,
    rar5: bool,
}

/// Checks the scratch file unrar wrote for `admitted` (see the module docs), then hands it to
/// the visitor.
fn visit_scratch_file(
    walker: &mut Walker<'_, '_>,
    archive: &Path,
    admitted: super::Admitted,
    raw_name: &str,
    scratch: &Path,
    member: &Member,
) -> Result<(), UnpackError> {
    let unsafe_entry = |kind: &str| UnpackError::UnsafeEntry {
        archive: archive.to_path_buf(),
        entry: raw_name.to_owned(),
        kind: kind.to_owned(),
    };
    let metadata = match fs::symlink_metadata(scratch) {
        Ok(metadata) => metadata,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Err(unsafe_entry(
                "link or reference record (unrar created no regular file for it)",
            ));
        }
        Err(err) => return Err(UnpackError::io(scratch, err)),
    };
    if metadata.file_type().is_symlink() {
        return Err(unsafe_entry("symlink"));
    }
    if !metadata.is_file() {
        return Err(unsafe_entry("special file"));
    }
    #[cfg(unix)]
    if std::os::unix::fs::MetadataExt::nlink(&metadata) > 1 {
        return Err(unsafe_entry("hard link"));
    }
    // Link and reference records record no CRC (0) for data they do not hold.
    let link_record = "hard link or file reference record (rar -oh / -oi)";
    let looks_like_link_record = !member.split && member.recorded_crc == 0 && member.size > 0;
    if metadata.len() != member.size {
        if looks_like_link_record {
            return Err(unsafe_entry(link_record));
        }
        return Err(UnpackError::corrupt(
            archive,
            format!(
                "entry {raw_name:?}: unrar produced {} bytes, the archive records {}",
                metadata.len(),
                member.size
            ),
        ));
    }
    let mut file = open_scratch(scratch)?;
    let crc32 = if member.split {
        None
    } else {
        let actual = hash_file(&mut file, scratch, |data, hasher: &mut crc32fast::Hasher| {
            hasher.update(data)
        })?
        .finalize();
        if actual == member.recorded_crc {
            Some(actual)
        } else if looks_like_link_record {
            return Err(unsafe_entry(link_record));
        } else if member.rar5 && blake2sp_prefix(&mut file, scratch)? == member.recorded_crc {
            // A BLAKE2sp archive (`rar -htb`): unrar verified the digest; no CRC32 is recorded.
            None
        } else {
            return Err(UnpackError::ChecksumMismatch {
                archive: archive.to_path_buf(),
                entry: raw_name.to_owned(),
                expected: member.recorded_crc,
                actual,
            });
        }
    };
    file.rewind().map_err(|err| UnpackError::io(scratch, err))?;
    let data = MemberData {
        size: member.size,
        crc32,
        executable: member.attr & 0o170_000 == 0o100_000 && member.attr & 0o111 != 0,
    };
    walker.visit(archive, admitted, data, &mut file)
}

/// Opens the scratch file for reading; unrar restores the member's permissions, which may
/// leave it unreadable (mode 000) for a non-root user.
fn open_scratch(scratch: &Path) -> Result<File, UnpackError> {
    match File::open(scratch) {
        Ok(file) => Ok(file),
        #[cfg(unix)]
        Err(err) if err.kind() == io::ErrorKind::PermissionDenied => {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(scratch, fs::Permissions::from_mode(0o600))
                .and_then(|()| File::open(scratch))
                .map_err(|err| UnpackError::io(scratch, err))
        }
        Err(err) => Err(UnpackError::io(scratch, err)),
    }
}

fn remove_scratch(scratch: &Path) -> Result<(), UnpackError> {
    match fs::remove_file(scratch) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(UnpackError::io(scratch, err)),
    }
}

fn hash_file<H: Default>(file: &mut File, path: &Path, update: impl Fn(&[u8], &mut H)) -> Result<H, UnpackError> {
    file.rewind().map_err(|err| UnpackError::io(path, err))?;
    let mut hasher = H::default();
    let mut buffer = vec![0u8; HASH_BUFFER];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => return Ok(hasher),
            Ok(count) => update(&buffer[..count], &mut hasher),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(UnpackError::io(path, err)),
        }
    }
}

/// The first four bytes of the file's BLAKE2sp digest, as unrar's header API reports them in
/// place of a CRC32.
fn blake2sp_prefix(file: &mut File, path: &Path) -> Result<u32, UnpackError> {
    let state = hash_file(file, path, |data, state: &mut Blake2sp| {
        state.0.update(data);
    })?;
    let digest = state.0.finalize();
    let bytes = digest.as_bytes();
    Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

struct Blake2sp(blake2s_simd::blake2sp::State);

impl Default for Blake2sp {
    fn default() -> Self {
        Blake2sp(blake2s_simd::blake2sp::State::new())
    }
}

fn is_rar5(file: &mut File) -> io::Result<bool> {
    let mut signature = [0u8; 8];
    let mut filled = 0;
    while filled < signature.len() {
        match file.read(&mut signature[filled..])? {
            0 => break,
            count => filled += count,
        }
    }
    Ok(&signature == RAR5_SIGNATURE)
}

/// A RAR member whose attributes are a Unix mode saying "symlink". (Windows attributes have
/// no such bit pattern short of an integrity-stream, not-indexed file on ReFS; whatever unrar
/// makes of a link record is caught again on the scratch file.)
fn is_unix_symlink(attr: u32) -> bool {
    attr & 0o170_000 == 0o120_000
}

fn unrar_error(archive: &Path, entry: Option<&str>, scratch: &Path, err: UnrarError) -> UnpackError {
    let at = entry.map(|entry| format!("entry {entry:?}: ")).unwrap_or_default();
    match (err.code, err.when) {
        (Code::BadData, When::Process) => UnpackError::ChecksumFailed {
            archive: archive.to_path_buf(),
            entry: entry.unwrap_or("(archive)").to_owned(),
            detail: "unrar found a CRC error in the member's data (damaged or truncated archive)".to_owned(),
        },
        (Code::EOpen, When::Process) => UnpackError::corrupt(
            archive,
            format!(
                "{at}the next volume of this multi-volume archive is missing or unreadable; every volume must be in the game folder"
            ),
        ),
        (Code::EOpen, When::Open) => {
            UnpackError::io(archive, io::Error::other(format!("unrar could not open it: {err}")))
        }
        (Code::MissingPassword | Code::BadPassword, _) => UnpackError::corrupt(
            archive,
            format!("{at}the archive is password-protected; lanspread cannot unpack encrypted archives"),
        ),
        (Code::EReference, _) => UnpackError::UnsafeEntry {
            archive: archive.to_path_buf(),
            entry: entry.unwrap_or("(archive)").to_owned(),
            kind: "file reference record (rar -oi)".to_owned(),
        },
        (Code::ECreate | Code::EWrite | Code::EClose, _) => UnpackError::io(
            scratch,
            io::Error::other(format!(
                "{at}unrar could not write the scratch file: {err} (is the disk full?)"
            )),
        ),
        (Code::NoMemory, _) => UnpackError::io(archive, io::Error::other(format!("{at}unrar ran out of memory"))),
        _ => UnpackError::corrupt(archive, format!("{at}unrar: {err}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_numbers_of_volume_names() {
        assert_eq!(part_number("game.part1.rar"), Some(1));
        assert_eq!(part_number("game.PART01.RAR"), Some(1));
        assert_eq!(part_number("game.part001.rar"), Some(1));
        assert_eq!(part_number("game.part2.rar"), Some(2));
        assert_eq!(part_number("my.part.game.part10.rar"), Some(10));
        assert_eq!(part_number("game.rar"), None);
        assert_eq!(part_number("game.part.rar"), None);
        assert_eq!(part_number("game.partx.rar"), None);
        assert_eq!(part_number("game.part1.zip"), None);
    }

    #[test]
    fn unix_symlink_modes() {
        assert!(is_unix_symlink(0o120_777));
        assert!(!is_unix_symlink(0o100_644));
        assert!(!is_unix_symlink(0o040_755));
        // Windows attributes: archive + read-only.
        assert!(!is_unix_symlink(0x21));
    }
}
