//! Install-side layout of a game root. The transactions (install, update,
//! uninstall, remove-downloaded, startup recovery) build on these names; the
//! library scan and the protocol's path validator keep them out of file lists.
//!
//! - `<id>/local/` — the installed game.
//! - `<id>/.local.installing/`, `<id>/.local.backup/` — staging and backup of
//!   an install transaction; lanspread's only when they hold [`OWNED_MARKER`].

pub mod unpack;

/// Staging directory an install unpacks into before it is renamed to `local/`.
pub const INSTALLING_DIR: &str = ".local.installing";
/// Where an update parks the old `local/` until the new one is promoted.
pub const BACKUP_DIR: &str = ".local.backup";
/// Marker file proving a reserved directory was created by lanspread.
pub const OWNED_MARKER: &str = ".lanspread_owned";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::is_reserved_name;

    #[test]
    fn install_directories_are_reserved_from_the_wire() {
        for name in [INSTALLING_DIR, BACKUP_DIR, OWNED_MARKER] {
            assert!(is_reserved_name(name), "{name}");
        }
    }
}
