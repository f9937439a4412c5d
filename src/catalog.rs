//! The catalog of known games: the bundled list compiled into the binary,
//! extended by an optional user file. It is the gate for sharing: only catalog
//! ids are announced, served, or accepted from other peers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::layout::{PathError, validate_game_id};

const BUNDLED_CATALOG: &str = include_str!("catalog.toml");

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogEntry {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Catalog {
    entries: BTreeMap<String, CatalogEntry>,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("cannot read catalog file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("catalog {origin} is not valid TOML with [[game]] tables (id, name, description): {source}")]
    Parse { origin: String, source: toml::de::Error },
    #[error("catalog {origin}: {source}")]
    BadId { origin: String, source: PathError },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    game: Vec<CatalogEntry>,
}

impl Catalog {
    /// The catalog compiled into the binary.
    pub fn bundled() -> Self {
        let mut catalog = Catalog::default();
        catalog
            .extend_from_toml(BUNDLED_CATALOG, "bundled")
            .expect("the bundled catalog is valid (checked by a unit test)");
        catalog
    }

    /// The bundled catalog plus the user's file, whose entries win on equal ids.
    pub fn load(user_file: Option<&Path>) -> Result<Self, CatalogError> {
        let mut catalog = Catalog::bundled();
        if let Some(path) = user_file {
            let text = std::fs::read_to_string(path).map_err(|source| CatalogError::Read {
                path: path.to_owned(),
                source,
            })?;
            catalog.extend_from_toml(&text, &path.display().to_string())?;
        }
        Ok(catalog)
    }

    fn extend_from_toml(&mut self, text: &str, origin: &str) -> Result<(), CatalogError> {
        let file: CatalogFile = toml::from_str(text).map_err(|source| CatalogError::Parse {
            origin: origin.to_owned(),
            source,
        })?;
        for entry in file.game {
            validate_game_id(&entry.id).map_err(|source| CatalogError::BadId {
                origin: origin.to_owned(),
                source,
            })?;
            self.entries.insert(entry.id.clone(), entry);
        }
        Ok(())
    }

    pub fn contains(&self, id: &str) -> bool {
        self.entries.contains_key(id)
    }

    pub fn get(&self, id: &str) -> Option<&CatalogEntry> {
        self.entries.get(id)
    }

    /// The display name of `id`, or the id itself when it is not in the catalog.
    pub fn display_name<'a>(&'a self, id: &'a str) -> &'a str {
        self.get(id).map_or(id, |entry| entry.name.as_str())
    }

    pub fn entries(&self) -> impl Iterator<Item = &CatalogEntry> {
        self.entries.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_catalog_parses_and_has_the_demo_titles() {
        let catalog = Catalog::bundled();
        assert!(catalog.contains("openarena"));
        assert_eq!(catalog.display_name("xonotic"), "Xonotic");
        assert_eq!(catalog.display_name("not-a-game"), "not-a-game");
    }

    #[test]
    fn user_catalog_extends_and_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.toml");
        std::fs::write(
            &path,
            "[[game]]\nid = \"mygame\"\nname = \"My Game\"\n\n[[game]]\nid = \"openarena\"\nname = \"OA\"\ndescription = \"x\"\n",
        )
        .unwrap();
        let catalog = Catalog::load(Some(&path)).unwrap();
        assert_eq!(catalog.display_name("mygame"), "My Game");
        assert_eq!(catalog.display_name("openarena"), "OA");
        assert!(catalog.contains("xonotic"));
    }

    #[test]
    fn bad_user_catalogs_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.toml");
        std::fs::write(&path, "[[game]]\nid = \"../etc\"\nname = \"x\"\n").unwrap();
        let err = Catalog::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("game id"), "{err}");

        std::fs::write(&path, "[[game]]\nname = \"no id\"\n").unwrap();
        assert!(matches!(Catalog::load(Some(&path)), Err(CatalogError::Parse { .. })));

        let missing = dir.path().join("missing.toml");
        assert!(matches!(Catalog::load(Some(&missing)), Err(CatalogError::Read { .. })));
    }
}
