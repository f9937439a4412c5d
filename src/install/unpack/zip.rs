//! ZIP through the `zip` crate, members in central-directory order. The crate's
//! own CRC check is turned off so the walker's crc32fast check reports the
//! recorded and computed values; the crate still bounds each member to its
//! recorded size.

use std::io::BufReader;
use std::path::Path;

use ::zip::ZipArchive;
use ::zip::read::ZipReadOptions;

use super::{MemberData, RawKind, UnpackError, Walker, open_archive, unix_special_kind};

pub(super) fn walk(walker: &mut Walker<'_, '_>, archive: &Path) -> Result<(), UnpackError> {
    let file = open_archive(archive)?;
    let mut zip = ZipArchive::new(BufReader::with_capacity(256 * 1024, file))
        .map_err(|err| UnpackError::corrupt(archive, format!("zip: {err}")))?;
    if zip.has_duplicate_names() {
        return Err(UnpackError::Duplicate {
            archive: archive.to_path_buf(),
            entry: "(a name listed twice in the zip's central directory)".to_owned(),
        });
    }
    for index in 0..zip.len() {
        let name = match zip.name_for_index(index) {
            Some(Ok(name)) => name.into_owned(),
            Some(Err(err)) => return Err(UnpackError::corrupt(archive, format!("zip: member #{index}: {err}"))),
            None => {
                return Err(UnpackError::corrupt(
                    archive,
                    format!("zip: member #{index} is missing"),
                ));
            }
        };
        let options = ZipReadOptions::new().ignore_crc32(true);
        let mut member = zip
            .by_index_with_options(index, options)
            .map_err(|err| UnpackError::corrupt(archive, format!("zip: entry {name:?}: {err}")))?;
        let mode = member.unix_mode().unwrap_or(0);
        let kind = if member.is_symlink() {
            RawKind::Unsafe("symlink".to_owned())
        } else if let Some(special) = unix_special_kind(mode) {
            RawKind::Unsafe(special.to_owned())
        } else if member.is_dir() {
            RawKind::Dir
        } else {
            RawKind::File
        };
        let data = MemberData {
            size: member.size(),
            crc32: Some(member.crc32()),
            executable: mode & 0o111 != 0,
        };
        walker.member(archive, &name, kind, data, &mut member)?;
    }
    Ok(())
}
