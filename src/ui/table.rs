//! `lanspread list` output: a plain-text table for people, JSON for scripts.

use serde::Serialize;

use super::format::format_size;
use crate::peer::{LibraryEntry, LibrarySnapshot};

/// One row of `list --json`: a game other peers share, at its latest version.
#[derive(Debug, Serialize)]
pub struct RemoteGameRow {
    pub id: String,
    pub name: String,
    pub version: String,
    pub size: u64,
    /// Addresses of the peers that share this latest version.
    pub peers: Vec<String>,
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
    })
}

/// Human-readable table of [`remote_rows`].
pub fn render_table(rows: &[RemoteGameRow]) -> String {
    let header = ["ID", "NAME", "VERSION", "SIZE", "PEERS"];
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|row| {
            [
                row.id.clone(),
                row.name.clone(),
                row.version.clone(),
                format_size(row.size),
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
    let mut push_row = |row: [&str; 5]| {
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
        push_row([&row[0], &row[1], &row[2], &row[3], &row[4]]);
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
            "ID         NAME       VERSION  SIZE     PEERS\nopenarena  OpenArena  2        3.0 MiB  127.0.0.1:2\n"
        );
    }
}
