//! `lanspread list` output: a plain-text table for people, JSON for scripts.

use serde::Serialize;

use super::format::format_size;
use crate::peer::{LibraryEntry, LibrarySnapshot};

/// One row of `list --json`: a game other peers share, at its latest version,
/// and what this machine has of it.
#[derive(Debug, Serialize)]
pub struct RemoteGameRow {
    pub id: String,
    pub name: String,
    pub version: String,
    pub size: u64,
    /// Addresses of the peers that share this latest version.
    pub peers: Vec<String>,
    /// The game's state here (`GameState::label`): "remote", "downloaded", "install failed", ...
    pub state: &'static str,
    /// The downloaded version here, if any.
    pub local_version: Option<String>,
    /// The version `local/` holds, when its install recorded one.
    pub installed_version: Option<String>,
    /// Why the last install of the downloaded version failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub install_failure: Option<String>,
}

/// The remote side of the library: every game some peer shares.
pub fn remote_rows(snapshot: &LibrarySnapshot) -> Vec<RemoteGameRow> {
    snapshot.games.iter().filter_map(remote_row).collect()
}

fn remote_row(entry: &LibraryEntry) -> Option<RemoteGameRow> {
    let version = entry.latest_version.clone()?;
    let peers = entry
        .peers
        .iter()
        .filter(|peer| peer.version == version)
        .map(|peer| peer.addr.to_string())
        .collect();
    let size = entry
        .peers
        .iter()
        .find(|peer| peer.version == version)
        .map_or(0, |peer| peer.size);
    Some(RemoteGameRow {
        id: entry.id.clone(),
        name: entry.name.clone(),
        version,
        size,
        peers,
        state: entry.state.label(),
        local_version: entry.local_version.clone(),
        installed_version: entry.installed_version.clone(),
        install_failure: entry.install_failure.clone(),
    })
}

/// Human-readable table of [`remote_rows`], then one line per failed install saying why.
pub fn render_table(rows: &[RemoteGameRow]) -> String {
    let header = ["ID", "NAME", "VERSION", "SIZE", "HERE", "PEERS"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|row| {
            [
                row.id.clone(),
                row.name.clone(),
                row.version.clone(),
                format_size(row.size),
                row.state.to_owned(),
                row.peers.join(", "),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut push_row = |row: [&str; 6]| {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    };
    push_row(header);
    for row in &cells {
        push_row([&row[0], &row[1], &row[2], &row[3], &row[4], &row[5]]);
    }
    for row in rows {
        if let Some(reason) = &row.install_failure {
            out.push_str(&format!(
                "\n{}: install failed: {reason}\n  `lanspread get {}` retries it\n",
                row.id, row.id
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::{GameState, PeerGameVersion};

    #[test]
    fn table_and_rows_show_the_latest_version_and_its_peers() {
        let peer = |port: u16, version: &str| PeerGameVersion {
            addr: ([127, 0, 0, 1], port).into(),
            peer_name: "p".into(),
            version: version.into(),
            size: 3 << 20,
            expanded_size: None,
        };
        let snapshot = LibrarySnapshot {
            games: vec![LibraryEntry {
                id: "openarena".into(),
                name: "OpenArena".into(),
                state: GameState::RemoteOnly,
                local_version: None,
                latest_version: Some("2".into()),
                installed: false,
                size: 3 << 20,
                expanded_size: None,
                peers: vec![peer(1, "1"), peer(2, "2")],
                ..LibraryEntry::default()
            }],
            ..LibrarySnapshot::default()
        };
        let rows = remote_rows(&snapshot);
        assert_eq!(rows[0].peers, ["127.0.0.1:2"]);
        let table = render_table(&rows);
        assert_eq!(
            table,
            "ID         NAME       VERSION  SIZE     HERE    PEERS\nopenarena  OpenArena  2        3.0 MiB  remote  127.0.0.1:2\n"
        );
    }

    #[test]
    fn a_failed_install_shows_as_a_state_and_says_why_below_the_table() {
        let snapshot = LibrarySnapshot {
            games: vec![LibraryEntry {
                id: "openarena".into(),
                name: "OpenArena".into(),
                state: GameState::InstallFailed,
                local_version: Some("2".into()),
                latest_version: Some("2".into()),
                install_failure: Some("cannot unpack: game.zip is damaged".into()),
                peers: vec![PeerGameVersion {
                    addr: ([127, 0, 0, 1], 1).into(),
                    peer_name: "p".into(),
                    version: "2".into(),
                    size: 1 << 20,
                    expanded_size: None,
                }],
                ..LibraryEntry::default()
            }],
            ..LibrarySnapshot::default()
        };
        let rows = remote_rows(&snapshot);
        let json = serde_json::to_value(&rows).unwrap();
        assert_eq!(json[0]["state"], "install failed");
        assert_eq!(json[0]["local_version"], "2");
        assert_eq!(json[0]["install_failure"], "cannot unpack: game.zip is damaged");
        let table = render_table(&rows);
        assert!(table.contains("  install failed  "), "{table}");
        assert!(
            table.contains(
                "openarena: install failed: cannot unpack: game.zip is damaged\n  `lanspread get openarena` retries it"
            ),
            "{table}"
        );
    }
}
