//! The peers pane: who is on the LAN, how far away, and what they send us now.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Row, Table, TableState, Wrap};

use super::{pane_block, selected_style};
use crate::ui::app::{App, Pane, PeerRow};
use crate::ui::format::format_rate;

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let rows = app.peer_rows();
    let block = pane_block(app, Pane::Peers, rows.len().to_string());
    if rows.is_empty() {
        let text = "No peers yet. Other boxes running lanspread appear here.";
        frame.render_widget(
            Paragraph::new(Line::from(text)).wrap(Wrap { trim: true }).block(block),
            area,
        );
        return;
    }
    let inner_width = area.width.saturating_sub(2);
    let sending = rows.iter().any(|row| row.rate.is_some());
    let address_width = rows
        .iter()
        .map(|row| row.summary.addr.to_string().len())
        .max()
        .unwrap_or(0)
        .max("Address".len()) as u16;
    // Columns in the order they are given up when the pane is narrow.
    let mut columns: Vec<Column> = vec![Column::Name, Column::Address, Column::Ping];
    if sending {
        columns.push(Column::Rate);
    }
    columns.push(Column::Games);
    columns.push(Column::Since);
    let width_of = |column: &Column| column.width(address_width) + 1;
    while columns.len() > 2 && columns.iter().map(width_of).sum::<u16>() > inner_width.saturating_sub(2) {
        columns.pop();
    }
    let header = Row::new(columns.iter().map(|column| column.title())).style(Style::new().add_modifier(Modifier::BOLD));
    let widths: Vec<Constraint> = columns
        .iter()
        .map(|column| match column {
            Column::Name => Constraint::Fill(1),
            other => Constraint::Length(other.width(address_width)),
        })
        .collect();
    let table_rows = rows
        .iter()
        .map(|row| Row::new(columns.iter().map(|column| column.cell(row)).collect::<Vec<_>>()));
    let table = Table::new(table_rows, widths)
        .header(header)
        .block(block)
        .row_highlight_style(selected_style(app, Pane::Peers))
        .highlight_symbol("> ");
    let mut state = TableState::default().with_selected(app.selected_peer_index());
    frame.render_stateful_widget(table, area, &mut state);
}

#[derive(Debug, Clone, Copy)]
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

    fn width(self, address_width: u16) -> u16 {
        match self {
            Column::Name => 6,
            Column::Address => address_width,
            Column::Ping => 6,
            Column::Rate => 10,
            Column::Games => 5,
            Column::Since => 8,
        }
    }

    fn cell(self, row: &PeerRow) -> String {
        let peer = &row.summary;
        match self {
            Column::Name if row.partial => format!("{} (partial)", peer.name),
            Column::Name => peer.name.clone(),
            Column::Address => peer.addr.to_string(),
            Column::Ping if peer.latency.is_zero() => "-".to_owned(),
            Column::Ping if peer.latency.as_millis() == 0 => "<1ms".to_owned(),
            Column::Ping => format!("{}ms", peer.latency.as_millis()),
            Column::Rate => row.rate.map(format_rate).unwrap_or_default(),
            Column::Games if !peer.library_loaded => "...".to_owned(),
            Column::Games => peer.game_count.to_string(),
            Column::Since => row.since.clone(),
        }
    }
}
