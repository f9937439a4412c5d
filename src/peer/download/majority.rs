//! Which file list to trust: the one a strict majority of the latest-version
//! peers agree on, entry by entry. Every path any peer lists gets a vote from
//! every peer: its entry (size, kind, content hash, all compared), or
//! "absent". A path whose winning vote is "absent" is not in the list; a path
//! with no strict majority fails the download. A peer whose list differs from
//! the majority in any way (a size, a hash, an extra or a missing file) is
//! left out of the download and reported, and the others go on.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;

use super::{DownloadPlan, TransferError};
use crate::proto::{GameDetails, GameFileDescription};

/// What the majority says, and why each dissenting peer dissents.
struct Majority<'a> {
    files: Vec<GameFileDescription>,
    /// The first path a peer disagrees on, described for the user.
    dissent: BTreeMap<SocketAddr, String>,
    /// Paths on which no vote has a strict majority.
    contested: Vec<&'a str>,
}

fn count_votes<'a>(manifests: &[(SocketAddr, &'a GameDetails)]) -> Majority<'a> {
    let lists: Vec<HashMap<&str, &GameFileDescription>> = manifests
        .iter()
        .map(|(_, details)| details.files.iter().map(|file| (file.path.as_str(), file)).collect())
        .collect();
    let paths: BTreeSet<&str> = lists.iter().flat_map(|list| list.keys().copied()).collect();
    let mut majority = Majority {
        files: Vec::new(),
        dissent: BTreeMap::new(),
        contested: Vec::new(),
    };
    for path in paths {
        let mut votes: HashMap<Option<&GameFileDescription>, usize> = HashMap::new();
        for list in &lists {
            *votes.entry(list.get(path).copied()).or_default() += 1;
        }
        let Some(winner) = votes
            .into_iter()
            .find(|(_, count)| count * 2 > manifests.len())
            .map(|(vote, _)| vote)
        else {
            majority.contested.push(path);
            continue;
        };
        if let Some(entry) = winner {
            majority.files.push(entry.clone());
        }
        for ((addr, _), list) in manifests.iter().zip(&lists) {
            let theirs = list.get(path).copied();
            if theirs != winner && !majority.dissent.contains_key(addr) {
                majority.dissent.insert(*addr, describe_dissent(path, theirs, winner));
            }
        }
    }
    majority
}

fn describe_dissent(path: &str, theirs: Option<&GameFileDescription>, most: Option<&GameFileDescription>) -> String {
    let kind = |file: &GameFileDescription| if file.is_dir { "a folder" } else { "a file" };
    match (theirs, most) {
        (None, _) => format!("lacks {path}, which most peers have"),
        (Some(_), None) => format!("lists {path}, which most peers do not have"),
        (Some(theirs), Some(most)) if theirs.is_dir != most.is_dir => {
            format!("reports {path} as {}, most peers as {}", kind(theirs), kind(most))
        }
        (Some(theirs), Some(most)) if theirs.size != most.size => format!(
            "reports {path} as {} bytes, most peers say {} bytes",
            theirs.size, most.size
        ),
        (Some(_), Some(_)) => format!("has different content in {path} from most peers"),
    }
}

/// The file list most peers agree on, sorted by path, for showing a game's files and
/// sizes before a download; paths without a majority are left out (the download then
/// says which).
pub fn majority_file_list(manifests: &[(SocketAddr, &GameDetails)]) -> Vec<GameFileDescription> {
    count_votes(manifests).files
}

/// Checks `requested` (the list the user saw) against the majority of `manifests` and
/// plans the download from the peers that agree with it on every entry.
pub fn validate_majority(
    id: &str,
    version: &str,
    requested: &[GameFileDescription],
    manifests: &[(SocketAddr, &GameDetails)],
) -> Result<DownloadPlan, TransferError> {
    if manifests.is_empty() {
        return Err(TransferError::NoMajority(
            "no peer has sent a file list for this version; ask for the game's files first".to_owned(),
        ));
    }
    let majority = count_votes(manifests);
    if let Some(path) = majority.contested.first() {
        return Err(TransferError::NoMajority(format!(
            "the {} peers disagree about {path} and no version of it has a majority; try again when more \
             peers are around",
            manifests.len()
        )));
    }
    let mut wanted: Vec<&GameFileDescription> = requested.iter().collect();
    wanted.sort_by(|a, b| a.path.cmp(&b.path));
    if !wanted.iter().copied().eq(majority.files.iter()) {
        let stale = wanted
            .iter()
            .find(|file| !majority.files.contains(file))
            .map(|file| file.path.clone())
            .or_else(|| {
                let requested_paths: BTreeSet<&str> = wanted.iter().map(|file| file.path.as_str()).collect();
                majority
                    .files
                    .iter()
                    .find(|file| !requested_paths.contains(file.path.as_str()))
                    .map(|file| file.path.clone())
            })
            .unwrap_or_default();
        return Err(TransferError::NoMajority(format!(
            "the file list is out of date ({stale} differs at most peers); fetch it again"
        )));
    }
    Ok(DownloadPlan {
        id: id.to_owned(),
        version: version.to_owned(),
        files: majority.files,
        peers: manifests
            .iter()
            .map(|(addr, _)| *addr)
            .filter(|addr| !majority.dissent.contains_key(addr))
            .collect(),
        excluded: majority.dissent.into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::ContentHash;

    fn file(path: &str, size: u64) -> GameFileDescription {
        GameFileDescription {
            path: path.into(),
            size,
            is_dir: false,
            hash: Some(ContentHash::of(path.as_bytes())),
        }
    }

    fn details(files: Vec<GameFileDescription>) -> GameDetails {
        GameDetails {
            id: "g".into(),
            version: "1".into(),
            files,
        }
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn the_majority_wins_and_dissenters_are_excluded() {
        let good = details(vec![file("a.zip", 100), file("version.ini", 1)]);
        let liar = details(vec![file("a.zip", 999), file("version.ini", 1)]);
        let manifests = [(addr(1), &good), (addr(2), &liar), (addr(3), &good)];
        assert_eq!(majority_file_list(&manifests), good.files);
        let plan = validate_majority("g", "1", &good.files, &manifests).unwrap();
        assert_eq!(plan.peers, [addr(1), addr(3)]);
        assert_eq!(plan.excluded.len(), 1);
        assert_eq!(plan.excluded[0].0, addr(2));
        assert!(plan.excluded[0].1.contains("999 bytes"), "{}", plan.excluded[0].1);
    }

    #[test]
    fn a_peer_with_an_extra_or_a_missing_file_is_left_out_and_the_others_go_on() {
        let good = details(vec![file("a.zip", 100), file("version.ini", 1)]);
        let extra = details(vec![file("a.zip", 100), file("extra.txt", 5), file("version.ini", 1)]);
        let missing = details(vec![file("version.ini", 1)]);
        let manifests = [
            (addr(1), &good),
            (addr(2), &extra),
            (addr(3), &good),
            (addr(4), &missing),
        ];
        let list = majority_file_list(&manifests);
        assert_eq!(list, good.files, "the extra file is not in the list");
        let plan = validate_majority("g", "1", &list, &manifests).unwrap();
        assert_eq!(plan.peers, [addr(1), addr(3)]);
        let reasons: BTreeMap<_, _> = plan.excluded.into_iter().collect();
        assert!(reasons[&addr(2)].contains("lists extra.txt"), "{reasons:?}");
        assert!(reasons[&addr(4)].contains("lacks a.zip"), "{reasons:?}");
    }

    #[test]
    fn same_size_different_content_is_a_dissent() {
        let good = details(vec![file("a.zip", 100)]);
        let mut rotten = good.clone();
        rotten.files[0].hash = Some(ContentHash::of(b"flipped"));
        let manifests = [(addr(1), &good), (addr(2), &rotten), (addr(3), &good)];
        let plan = validate_majority("g", "1", &good.files, &manifests).unwrap();
        assert_eq!(plan.peers, [addr(1), addr(3)]);
        assert!(
            plan.excluded[0].1.contains("different content in a.zip"),
            "{:?}",
            plan.excluded
        );
    }

    #[test]
    fn no_majority_or_stale_list_is_a_clear_failure() {
        let one = details(vec![file("a.zip", 100)]);
        let two = details(vec![file("a.zip", 200)]);
        let err = validate_majority("g", "1", &one.files, &[(addr(1), &one), (addr(2), &two)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("no version of it has a majority"), "{err}");

        let half = details(vec![file("a.zip", 100), file("extra.txt", 5)]);
        let err = validate_majority("g", "1", &one.files, &[(addr(1), &one), (addr(2), &half)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("extra.txt"), "a file at exactly half the peers: {err}");

        let err = validate_majority("g", "1", &[file("a.zip", 5)], &[(addr(1), &one)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("out of date"), "{err}");
        let err = validate_majority("g", "1", &[], &[(addr(1), &one)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("out of date (a.zip"), "{err}");

        let err = validate_majority("g", "1", &one.files, &[]).unwrap_err().to_string();
        assert!(err.contains("no peer"), "{err}");
    }
}
