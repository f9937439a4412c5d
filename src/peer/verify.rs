//! `verify`: hashes a downloaded game's payload and compares it, block by block, with a
//! reference — the majority file list (and block lists) of the peers that have the same
//! version when any answer, else the hashes this peer recorded when it scanned or
//! downloaded the game (which catches rot: bytes changed without the file's stamp
//! changing). A repair is a download of the same version that keeps every block found
//! intact here (see `download::reuse`) and fetches only the damaged ones.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::PeerEvent;
use super::client::PeerClient;
use super::download::expected::{Expected, expected_content};
use super::download::majority::{majority_file_list, validate_majority};
use super::download::reuse::SourceFile;
use super::download::{DownloadPlan, TransferError};
use crate::beneath::open_file_beneath;
use crate::content::{FileHashes, hash_file};
use crate::layout::VERSION_FILE;
use crate::proto::{GameDetails, GameFileDescription};

/// File lists asked for at once. A peer that vanished costs a whole connect timeout (5 s),
/// so at a party of 30 peers, some gone, one after another would take minutes; 8 at once
/// is what a download uses for block lists (`expected::LISTS_IN_FLIGHT`).
const LISTS_IN_FLIGHT: usize = 8;

/// What the payload was compared with.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Reference {
    /// The majority list of this many peers with the same version.
    Peers(usize),
    /// The hashes recorded here (no peer with this version answered).
    Recorded,
    /// Nothing to compare with: no peer has this version and nothing is recorded.
    Nothing,
}

/// One damaged file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Damage {
    pub path: String,
    pub kind: DamageKind,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DamageKind {
    Missing,
    Size {
        expected: u64,
        found: u64,
    },
    /// These blocks (0-based, `content::BLOCK_SIZE` each) differ, of `of`.
    Blocks {
        blocks: Vec<u64>,
        of: u64,
    },
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            DamageKind::Missing => write!(f, "{}: missing", self.path),
            DamageKind::Size { expected, found } => {
                write!(f, "{}: {found} bytes, should be {expected}", self.path)
            }
            DamageKind::Blocks { blocks, of } => {
                let shown: Vec<String> = blocks.iter().take(8).map(ToString::to_string).collect();
                let more = if blocks.len() > 8 { ", ..." } else { "" };
                write!(
                    f,
                    "{}: {} of {of} blocks differ (block {}{more})",
                    self.path,
                    blocks.len(),
                    shown.join(", ")
                )
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VerifyReport {
    pub id: String,
    pub version: String,
    pub reference: Reference,
    pub files: usize,
    pub bytes: u64,
    pub damaged: Vec<Damage>,
    /// Payload files with nothing to compare with, so not checked: with the recorded
    /// hashes as the reference, those without a record of the file as it is now (it
    /// changed or appeared since it was last hashed). A game with any is not intact.
    pub unchecked: Vec<String>,
}

/// The result of the checking part, and what a repair needs.
pub struct Verified {
    pub report: VerifyReport,
    /// The download that repairs the damage from the peers (when they are the reference).
    pub repair: Option<DownloadPlan>,
    /// What the payload on disk holds now, block by block, for the repair to keep.
    pub on_disk: BTreeMap<String, SourceFile>,
}

/// The game as the local library knows it.
pub struct LocalGame<'a> {
    pub id: &'a str,
    pub version: &'a str,
    pub game_dir: &'a Path,
    pub state_dir: &'a Path,
    /// The scanned payload list, with roots.
    pub files: &'a [GameFileDescription],
}

/// Compares the payload with the peers' majority (`peers`: those announcing this version)
/// or the recorded hashes. Reports progress as `VerifyProgress` events.
pub async fn verify(
    game: LocalGame<'_>,
    client: &PeerClient,
    peers: &[SocketAddr],
    events: &mpsc::Sender<PeerEvent>,
    cancel: &CancellationToken,
) -> Result<Verified, TransferError> {
    let lists = same_version_lists(client, game.id, game.version, peers).await;
    let manifests: Vec<(SocketAddr, &GameDetails)> = lists.iter().map(|(addr, details)| (*addr, details)).collect();
    let (reference, files, expected, repair) = if manifests.is_empty() {
        let (files, expected) = recorded_reference(&game).await?;
        let reference = if expected.iter().any(Option::is_some) {
            Reference::Recorded
        } else {
            Reference::Nothing
        };
        (reference, files, expected, None)
    } else {
        let majority = majority_file_list(&manifests);
        let plan = validate_majority(game.id, game.version, &majority, &manifests)?;
        let (expected, _liars) = expected_content(client, game.id, &plan.files, &plan.peers).await?;
        (
            Reference::Peers(plan.peers.len()),
            plan.files.clone(),
            expected,
            Some(plan),
        )
    };

    let unchecked = files
        .iter()
        .zip(&expected)
        .filter(|(file, wanted)| !file.is_dir && wanted.is_none())
        .map(|(file, _)| file.path.clone())
        .collect();
    let (root, events_out, cancel_out) = (game.game_dir.join(game.id), events.clone(), cancel.clone());
    let id = game.id.to_owned();
    let checked =
        tokio::task::spawn_blocking(move || check_payload(&root, &id, &files, &expected, &events_out, &cancel_out))
            .await
            .map_err(|err| TransferError::Internal(format!("the verify task failed: {err}")))??;
    let (damaged, on_disk, files_checked, bytes) = checked;
    Ok(Verified {
        report: VerifyReport {
            id: game.id.to_owned(),
            version: game.version.to_owned(),
            reference,
            files: files_checked,
            bytes,
            damaged,
            unchecked,
        },
        repair,
        on_disk,
    })
}

/// The file lists of `peers` that are of `version`, in the order of `peers`, asked for
/// [`LISTS_IN_FLIGHT`] at a time. A peer that does not answer is left out (and logged).
async fn same_version_lists(
    client: &PeerClient,
    id: &str,
    version: &str,
    peers: &[SocketAddr],
) -> Vec<(SocketAddr, GameDetails)> {
    let mut answers: Vec<_> = futures_util::stream::iter(peers.iter().copied().enumerate())
        .map(|(index, addr)| async move { (index, addr, client.get_game(addr, id).await) })
        .buffer_unordered(LISTS_IN_FLIGHT)
        .collect()
        .await;
    answers.sort_by_key(|(index, _, _)| *index);
    let mut lists = Vec::new();
    for (_, addr, answer) in answers {
        match answer {
            Ok(details) if details.version == version => lists.push((addr, details)),
            Ok(_) => {}
            Err(err) => tracing::info!(%addr, game = id, "no file list for verify: {err}"),
        }
    }
    lists
}

/// The library's recorded block hashes of the game, as a reference. A file without a
/// usable record (changed since it was hashed) gets no expectation. Only what was recorded
/// before this verify was asked for counts: hashes made since, from the very bytes being
/// checked, could only agree with them. So `lanspread verify` runs its runtime without
/// background hashing (`Config::hash_library`), and a file still waiting for its hash when
/// the verify was asked (no root in `game.files`) gets none even if its hash lands meanwhile.
async fn recorded_reference(
    game: &LocalGame<'_>,
) -> Result<(Vec<GameFileDescription>, Vec<Option<Expected>>), TransferError> {
    let (state_dir, game_dir, id, files) = (
        game.state_dir.to_owned(),
        game.game_dir.to_owned(),
        game.id.to_owned(),
        game.files.to_vec(),
    );
    tokio::task::spawn_blocking(move || {
        let expected = files
            .iter()
            .map(|file| {
                if file.is_dir {
                    return None;
                }
                let hashes = crate::library::block_hashes(&state_dir, &game_dir, &id, &file.path)?;
                (Some(hashes.root(file.size)) == file.hash).then(|| Expected::of(file.size, hashes))
            })
            .collect();
        (files, expected)
    })
    .await
    .map_err(|err| TransferError::Internal(format!("the verify task failed: {err}")))
}

type Checked = (Vec<Damage>, BTreeMap<String, SourceFile>, usize, u64);

/// Hashes every listed file that has an expectation and compares. Blocks.
fn check_payload(
    root: &Path,
    id: &str,
    files: &[GameFileDescription],
    expected: &[Option<Expected>],
    events: &mpsc::Sender<PeerEvent>,
    cancel: &CancellationToken,
) -> Result<Checked, TransferError> {
    let total: u64 = files
        .iter()
        .zip(expected)
        .filter(|(_, wanted)| wanted.is_some())
        .map(|(file, _)| file.size)
        .sum();
    let mut done = 0u64;
    let mut damaged = Vec::new();
    let mut on_disk = BTreeMap::new();
    let mut checked = 0;
    let mut last_report = std::time::Instant::now();
    for (file, wanted) in files.iter().zip(expected) {
        let Some(wanted) = wanted else { continue };
        if cancel.is_cancelled() {
            return Err(TransferError::Cancelled);
        }
        checked += 1;
        let opened = match open_file_beneath(root, &file.path) {
            Ok(opened) => opened,
            Err(_) => {
                damaged.push(Damage {
                    path: file.path.clone(),
                    kind: DamageKind::Missing,
                });
                done += file.size;
                continue;
            }
        };
        let mut progress = |bytes: u64| {
            if last_report.elapsed() >= std::time::Duration::from_millis(250) {
                last_report = std::time::Instant::now();
                let _ = events.try_send(PeerEvent::VerifyProgress {
                    id: id.to_owned(),
                    bytes: done + bytes,
                    total,
                });
            }
        };
        let hashes: FileHashes = hash_file(&opened.file, opened.len, &mut progress, &|| cancel.is_cancelled())
            .map_err(|err| TransferError::local(&root.join(&file.path), err))?;
        done += file.size;
        if file.path != VERSION_FILE {
            on_disk.insert(
                file.path.clone(),
                SourceFile {
                    len: opened.len,
                    blocks: hashes.blocks.iter().copied().map(Some).collect(),
                },
            );
        }
        if opened.len != file.size {
            damaged.push(Damage {
                path: file.path.clone(),
                kind: DamageKind::Size {
                    expected: file.size,
                    found: opened.len,
                },
            });
            continue;
        }
        let bad: Vec<u64> = (0..wanted.block_count())
            .filter(|block| {
                hashes
                    .blocks
                    .get(*block as usize)
                    .is_none_or(|hash| !wanted.matches(*block, hash))
            })
            .collect();
        if !bad.is_empty() {
            damaged.push(Damage {
                path: file.path.clone(),
                kind: DamageKind::Blocks {
                    blocks: bad,
                    of: wanted.block_count(),
                },
            });
        }
    }
    Ok((damaged, on_disk, checked, done))
}
