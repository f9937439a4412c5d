//! The peers pane: who is on the LAN, how far away, and what they send us now; below
//! them, the peers that do not answer (left, or configured and never reached).

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Row, Table, TableState, Wrap};

use super::{first_shown, pane_block, position_title, selected_style};
use crate::ui::app::{App, Pane, PeerRow};
use crate::ui::format::format_rate;
use crate::ui::text::{elide_end, width};

/// The name keeps at least this much before other columns are given up.
const NAME_AT_LEAST: usize = 10;
/// The `> ` selection marker.
const MARKER: usize = 2;

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let rows = app.peer_rows();
    let absent = rows.iter().filter(|row| row.absent.is_some()).count();
    let count = match absent {
        0 => rows.len().to_string(),
        absent => format!("{}, {absent} absent", rows.len() - absent),
    };
    let block = pane_block(app, Pane::Peers, count);
    if rows.is_empty() {
        let text = "No peers yet. Other boxes running lanspread appear here.";
        frame.render_widget(
            Paragraph::new(Line::from(text)).wrap(Wrap { trim: true }).block(block),
            area,
        );
        return;
    }
    let room = usize::from(area.width.saturating_sub(2)).saturating_sub(MARKER);
    let sending = rows.iter().any(|row| row.rate.is_some());
    let mut columns: Vec<Column> = [
        Column::Address,
        Column::Ping,
        Column::Rate,
        Column::Games,
        Column::Since,
    ]
    .into_iter()
    .filter(|column| sending || !matches!(column, Column::Rate))
    .collect();
    let width_of = |column: Column| {
        rows.iter()
            .map(|row| width(&column.cell(row)))
            .chain([width(column.title())])
            .max()
            .unwrap_or(0)
    };
    let name_wanted = width_of(Column::Name);
    let others = |columns: &[Column]| columns.iter().map(|column| width_of(*column) + 1).sum::<usize>();
    // Given up in this order when the name would get less than it needs (or NAME_AT_LEAST):
    // when it came, where it is, then how many games; how it answers and what it sends stay.
    for dropped in [Column::Since, Column::Address, Column::Games, Column::Rate] {
        if room.saturating_sub(others(&columns)) >= name_wanted.min(NAME_AT_LEAST) {
            break;
        }
        columns.retain(|column| *column != dropped);
    }
    columns.insert(0, Column::Name);
    let name_width = room.saturating_sub(others(&columns[1..]));
    let header = Row::new(columns.iter().map(|column| column.title())).style(Style::new().add_modifier(Modifier::BOLD));
    let widths: Vec<Constraint> = columns
        .iter()
        .map(|column| match column {
            Column::Name => Constraint::Fill(1),
            other => Constraint::Length(width_of(*other) as u16),
        })
        .collect();
    let table_rows = rows.iter().map(|row| {
        let cells = columns.iter().map(|column| match column {
            Column::Name => elide_end(&column.cell(row), name_width),
            other => other.cell(row),
        });
        Row::new(cells.collect::<Vec<_>>())
    });
    let visible = usize::from(area.height.saturating_sub(3));
    let first = first_shown(app.selected_peer_index(), visible);
    let block = match position_title(first, visible, rows.len()) {
        Some(position) => block.title_bottom(position),
        None => block,
    };
    let table = Table::new(table_rows, widths)
        .header(header)
        .block(block)
        .row_highlight_style(selected_style(app, Pane::Peers))
        .highlight_symbol("> ");
    let mut state = TableState::default()
        .with_offset(first)
        .with_selected(app.selected_peer_index());
    frame.render_stateful_widget(table, area, &mut state);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Name,
    Address,
    Ping,
    Rate,
    Games,
    Since,
}

impl Column {
    fn title(self) -> &'static str {
        match self {
            Column::Name => "Name",
            Column::Address => "Address",
            Column::Ping => "Ping",
            Column::Rate => "Sending",
            Column::Games => "Games",
            Column::Since => "Since",
        }
    }

    fn cell(self, row: &PeerRow) -> String {
        let peer = &row.summary;
        match self {
            Column::Name if row.partial => format!("{} (partial)", peer.name),
            Column::Name => peer.name.clone(),
            Column::Address => peer.addr.to_string(),
            Column::Ping => row.status(),
            Column::Rate => row.rate.map(format_rate).unwrap_or_default(),
            Column::Games if !peer.library_loaded => "...".to_owned(),
            Column::Games if row.absent.is_some() && peer.game_count == 0 => "-".to_owned(),
            Column::Games => peer.game_count.to_string(),
            Column::Since => row.since.clone(),
        }
    }
}
