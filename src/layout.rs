//! The one home of the game-folder layout: what lives in a game root, which
//! names are lanspread's own, and the one validator for relative paths from
//! the network. `proto`, `library`, `install`, `peer` and the UI all use it.
//!
//! A game root `<game_dir>/<id>/` holds:
//! - `version.ini` — a regular file: the game is downloaded; its content is the version.
//!   Written last through `.version.ini.tmp`; an old one is parked as
//!   `.version.ini.discarded` while a download runs.
//! - the payload (archives and other files): everything else that is not reserved.
//! - `local/` — the installed game: exactly the game's files.
//! - `.lanspread_installed` — which version `local/` holds, and whether it came from a
//!   streamed install (no archives); written with the install (see `install::record`).
//! - `.local.installing/`, `.local.backup/`, `.local.removing/` — staging, the previous
//!   install during an update, an install being deleted; ours only when marked with
//!   `.lanspread_owned` or named by the install journal.
//! - `.lanspread_install_failed` — the last install of the downloaded version failed.
//!
//! Reserved names (`.local.*`, `.lanspread*`, the temp sentinels, and `local` at the
//! root) are never listed, served or accepted from the network.

use std::path::{Path, PathBuf};

use crate::untrusted::quote_untrusted;

/// Longest relative path accepted from the network.
pub const MAX_PATH_LEN: usize = 4096;
/// The root-level sentinel whose presence means "downloaded".
pub const VERSION_FILE: &str = "version.ini";
/// Where a new `version.ini` is written before its atomic rename.
pub const VERSION_TMP_FILE: &str = ".version.ini.tmp";
/// Where an old `version.ini` is parked while a download runs.
pub const VERSION_DISCARDED_FILE: &str = ".version.ini.discarded";
/// The installed game; never announced or served.
pub const LOCAL_DIR: &str = "local";
/// Staging directory an install unpacks into before it is renamed to `local/`.
pub const INSTALLING_DIR: &str = ".local.installing";
/// Where an update parks the old `local/` until the new one is promoted.
pub const BACKUP_DIR: &str = ".local.backup";
/// Where an uninstall moves `local/` before deleting it.
pub const REMOVING_DIR: &str = ".local.removing";
/// Marker file proving a reserved directory was created by lanspread.
pub const OWNED_MARKER: &str = ".lanspread_owned";
/// In the game root: what `local/` holds.
pub const INSTALLED_RECORD: &str = ".lanspread_installed";
/// In the game root: the last install of the downloaded version failed, and why.
pub const INSTALL_FAILED_RECORD: &str = ".lanspread_install_failed";

/// The paths of one game root.
#[derive(Debug, Clone)]
pub struct GameLayout {
    pub root: PathBuf,
}

impl GameLayout {
    pub fn new(game_dir: &Path, id: &str) -> Self {
        GameLayout {
            root: game_dir.join(id),
        }
    }
    pub fn local(&self) -> PathBuf {
        self.root.join(LOCAL_DIR)
    }
    pub fn installing(&self) -> PathBuf {
        self.root.join(INSTALLING_DIR)
    }
    pub fn backup(&self) -> PathBuf {
        self.root.join(BACKUP_DIR)
    }
    pub fn removing(&self) -> PathBuf {
        self.root.join(REMOVING_DIR)
    }
    pub fn sentinel(&self) -> PathBuf {
        self.root.join(VERSION_FILE)
    }
    pub fn installed_record(&self) -> PathBuf {
        self.root.join(INSTALLED_RECORD)
    }
    pub fn install_failed_record(&self) -> PathBuf {
        self.root.join(INSTALL_FAILED_RECORD)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path is empty")]
    Empty,
    #[error("path is longer than {MAX_PATH_LEN} bytes")]
    TooLong,
    #[error("path {} is absolute", quote_untrusted(.0))]
    Absolute(String),
    #[error("path {} must use '/' separators and no NUL bytes", quote_untrusted(.0))]
    BadCharacter(String),
    #[error("path {} has an empty, '.' or '..' component", quote_untrusted(.0))]
    BadComponent(String),
    #[error("path {} names a reserved entry", quote_untrusted(.0))]
    Reserved(String),
    #[error("game id {} must be 1-64 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit", quote_untrusted(.0))]
    BadGameId(String),
}

/// Names inside a game root that belong to lanspread, never to the game's payload.
pub fn is_reserved_name(name: &str) -> bool {
    name.starts_with(".local.")
        || name.starts_with(".lanspread")
        || name == VERSION_TMP_FILE
        || name == VERSION_DISCARDED_FILE
}

/// The one validator for relative paths from the network (server and client side):
/// non-empty, `/`-separated, not absolute, no empty/`.`/`..` components, and
/// nothing reserved (`local/` at the root, `.local.*`, `.lanspread*`, temp sentinels).
pub fn validate_relative_path(path: &str) -> Result<(), PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if path.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong);
    }
    if path.starts_with('/') || path.starts_with('\\') || has_drive_prefix(path) {
        return Err(PathError::Absolute(path.to_owned()));
    }
    if path.contains('\\') || path.contains('\0') {
        return Err(PathError::BadCharacter(path.to_owned()));
    }
    for (index, component) in path.split('/').enumerate() {
        if component.is_empty() || component == "." || component == ".." {
            return Err(PathError::BadComponent(path.to_owned()));
        }
        if is_reserved_name(component) || (index == 0 && component == LOCAL_DIR) {
            return Err(PathError::Reserved(path.to_owned()));
        }
    }
    Ok(())
}

fn has_drive_prefix(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':'
}

/// Game ids name directories directly under the game dir, so they are kept to a safe alphabet.
pub fn validate_game_id(id: &str) -> Result<(), PathError> {
    let valid = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
        && id.as_bytes()[0].is_ascii_alphanumeric();
    if valid {
        Ok(())
    } else {
        Err(PathError::BadGameId(id.to_owned()))
    }
}

/// Validates `relative` and joins it onto `root` component by component.
pub fn resolve_in_root(root: &Path, relative: &str) -> Result<PathBuf, PathError> {
    validate_relative_path(relative)?;
    let mut path = root.to_path_buf();
    path.extend(relative.split('/'));
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_relative_paths() {
        for path in [
            "game.rar",
            "data/maps/dm1.pk3",
            "a b/c-d_e.f",
            "localdata/x",
            "sub/local",
        ] {
            assert_eq!(validate_relative_path(path), Ok(()), "{path}");
        }
    }

    #[test]
    fn rejects_traversal_absolute_and_reserved_paths() {
        let cases = [
            ("", PathError::Empty),
            ("../../etc/passwd", PathError::BadComponent("../../etc/passwd".into())),
            ("a/../b", PathError::BadComponent("a/../b".into())),
            ("a//b", PathError::BadComponent("a//b".into())),
            ("./a", PathError::BadComponent("./a".into())),
            ("a/", PathError::BadComponent("a/".into())),
            ("/etc/passwd", PathError::Absolute("/etc/passwd".into())),
            ("C:/windows", PathError::Absolute("C:/windows".into())),
            ("a\\..\\b", PathError::BadCharacter("a\\..\\b".into())),
            ("a\0b", PathError::BadCharacter("a\0b".into())),
            ("local/game.exe", PathError::Reserved("local/game.exe".into())),
            (".local.installing/x", PathError::Reserved(".local.installing/x".into())),
            ("x/.lanspread_owned", PathError::Reserved("x/.lanspread_owned".into())),
            (".version.ini.tmp", PathError::Reserved(".version.ini.tmp".into())),
        ];
        for (path, expected) in cases {
            assert_eq!(validate_relative_path(path), Err(expected), "{path:?}");
        }
        assert_eq!(validate_relative_path(&"a/".repeat(3000)), Err(PathError::TooLong));
    }

    #[test]
    fn game_ids_are_safe_directory_names() {
        assert!(validate_game_id("openarena").is_ok());
        assert!(validate_game_id("cs1.6_x-y").is_ok());
        for bad in ["", "..", ".hidden", "A", "a/b", "a b", &"x".repeat(65)] {
            assert!(validate_game_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lanspread_s_own_names_are_reserved_from_the_wire() {
        for name in [
            INSTALLING_DIR,
            BACKUP_DIR,
            REMOVING_DIR,
            OWNED_MARKER,
            INSTALLED_RECORD,
            INSTALL_FAILED_RECORD,
            VERSION_TMP_FILE,
            VERSION_DISCARDED_FILE,
        ] {
            assert!(is_reserved_name(name), "{name}");
        }
    }
}
