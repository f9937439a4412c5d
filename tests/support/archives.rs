//! Real archives for tests: trees of files written as ZIP, tar, tar.gz and
//! tar.zst with the same crates' writers (names written byte for byte, so
//! hostile archives can be made too), and the committed RAR fixtures.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use zip::write::SimpleFileOptions;

/// Path -> `Some(bytes)` for a file, `None` for a directory.
pub type Tree = BTreeMap<String, Option<Vec<u8>>>;

/// What the generated archives hold: nested dirs, an empty dir, a zero-byte file, a file
/// larger than one write buffer, a script marked executable (`bin/start.sh`).
pub fn sample_tree() -> Tree {
    let mut tree = Tree::new();
    tree.insert("readme.txt".into(), Some(b"hello from lanspread\n".to_vec()));
    tree.insert("data".into(), None);
    tree.insert("data/level1.dat".into(), Some(super::pseudo_random_bytes(1, 1_300_000)));
    tree.insert("data/empty.bin".into(), Some(Vec::new()));
    tree.insert("data/sub".into(), None);
    tree.insert("data/sub/deep.txt".into(), Some(b"deep file\n".to_vec()));
    tree.insert("bin".into(), None);
    tree.insert("bin/start.sh".into(), Some(b"#!/bin/sh\necho start\n".to_vec()));
    tree.insert("emptydir".into(), None);
    tree
}

/// Reads a directory back as a [`Tree`]; symlinks and special files fail the test.
pub fn read_tree(root: &Path) -> Tree {
    fn walk(root: &Path, dir: &Path, tree: &mut Tree) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let relative = path.strip_prefix(root).unwrap().to_str().unwrap().to_owned();
            let metadata = fs::symlink_metadata(&path).unwrap();
            if metadata.is_dir() {
                tree.insert(relative, None);
                walk(root, &path, tree);
            } else {
                assert!(metadata.is_file(), "{relative} is neither a file nor a directory");
                tree.insert(relative, Some(fs::read(&path).unwrap()));
            }
        }
    }
    let mut tree = Tree::new();
    walk(root, root, &mut tree);
    tree
}

pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).unwrap().permissions().mode() & 0o111 != 0
}

pub fn write_zip(path: &Path, tree: &Tree) {
    let mut zip = zip::ZipWriter::new(File::create(path).unwrap());
    for (name, content) in tree {
        match content {
            None => zip
                .add_directory(format!("{name}/"), SimpleFileOptions::default())
                .unwrap(),
            Some(bytes) => {
                // Alternate stored and deflated members.
                let method = if bytes.len() % 2 == 0 {
                    zip::CompressionMethod::Stored
                } else {
                    zip::CompressionMethod::Deflated
                };
                let mode = if name.ends_with(".sh") { 0o755 } else { 0o644 };
                let options = SimpleFileOptions::default()
                    .compression_method(method)
                    .unix_permissions(mode);
                zip.start_file(name.as_str(), options).unwrap();
                zip.write_all(bytes).unwrap();
            }
        }
    }
    zip.finish().unwrap();
}

/// One raw tar member; the name is written byte for byte (the tar crate's own path setter
/// refuses `..`), so hostile archives can be made too.
pub struct TarMember<'a> {
    pub name: &'a str,
    pub kind: tar::EntryType,
    pub data: &'a [u8],
    pub mode: u32,
    pub link: Option<&'a str>,
}

impl<'a> TarMember<'a> {
    pub fn file(name: &'a str, data: &'a [u8]) -> Self {
        TarMember {
            name,
            kind: tar::EntryType::Regular,
            data,
            mode: if name.ends_with(".sh") { 0o755 } else { 0o644 },
            link: None,
        }
    }

    pub fn dir(name: &'a str) -> Self {
        TarMember {
            name,
            kind: tar::EntryType::Directory,
            data: b"",
            mode: 0o755,
            link: None,
        }
    }

    pub fn link(name: &'a str, kind: tar::EntryType, target: &'a str) -> Self {
        TarMember {
            name,
            kind,
            data: b"",
            mode: 0o777,
            link: Some(target),
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

pub fn tar_bytes(members: &[TarMember<'_>]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for member in members {
        let mut header = tar::Header::new_gnu();
        let name = member.name.as_bytes();
        assert!(name.len() < 100, "test names fit the old header");
        header.as_old_mut().name[..name.len()].copy_from_slice(name);
        header.set_entry_type(member.kind);
        header.set_mode(member.mode);
        header.set_size(member.data.len() as u64);
        header.set_mtime(1_700_000_000);
        if let Some(target) = member.link {
            header.set_link_name_literal(target).unwrap();
        }
        header.set_cksum();
        builder.append(&header, member.data).unwrap();
    }
    builder.into_inner().unwrap()
}

pub fn compress(bytes: &[u8], compression: Compression) -> Vec<u8> {
    match compression {
        Compression::None => bytes.to_vec(),
        Compression::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(bytes).unwrap();
            encoder.finish().unwrap()
        }
        Compression::Zstd => {
            let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
            encoder.include_checksum(true).unwrap();
            encoder.write_all(bytes).unwrap();
            encoder.finish().unwrap()
        }
    }
}

pub fn tree_members(tree: &Tree) -> Vec<TarMember<'_>> {
    tree.iter()
        .map(|(name, content)| match content {
            None => TarMember::dir(name),
            Some(bytes) => TarMember::file(name, bytes),
        })
        .collect()
}

pub fn write_tar(path: &Path, members: &[TarMember<'_>], compression: Compression) {
    fs::write(path, compress(&tar_bytes(members), compression)).unwrap();
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/rar")
        .join(name)
}
