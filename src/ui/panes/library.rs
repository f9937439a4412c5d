//! The library pane: every game on the LAN and here, with its state.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState, Wrap};

use super::{pane_block, selected_style};
use crate::ui::app::{App, Pane, Tone};
use crate::ui::format::format_size;

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let rows = app.library_rows();
    let mut detail = format!("{} · sort: {}", rows.len(), app.sort().label());
    if !app.filter().is_empty() || app.is_filtering() {
        detail.push_str(&format!(" · filter: {}", app.filter()));
    }
    let block = pane_block(app, Pane::Library, detail);
    if rows.is_empty() {
        let text = if app.filter().is_empty() {
            "No games yet. Games appear here as peers running lanspread on this LAN are found."
        } else {
            "No game matches the filter (Esc clears it)."
        };
        frame.render_widget(
            Paragraph::new(Line::from(text)).wrap(Wrap { trim: true }).block(block),
            area,
        );
        return;
    }
    let table_rows = rows.iter().map(|row| {
        let tone = tone_style(row.tone);
        Row::new(vec![
            Cell::from(row.name.clone()),
            Cell::from(row.state.clone()).style(tone),
            Cell::from(row.version.clone()),
            Cell::from(row.size.map(format_size).unwrap_or_default()),
        ])
    });
    let header = Row::new(["Name", "State", "Version", "Size"]).style(Style::new().add_modifier(Modifier::BOLD));
    let table = Table::new(
        table_rows,
        [
            Constraint::Fill(1),
            Constraint::Length(28),
            Constraint::Length(14),
            Constraint::Length(10),
        ],
    )
    .header(header)
    .block(block)
    .row_highlight_style(selected_style(app, Pane::Library))
    .highlight_symbol("> ");
    let mut state = TableState::default().with_selected(app.selected_library_index());
    frame.render_stateful_widget(table, area, &mut state);
}

fn tone_style(tone: Tone) -> Style {
    match tone {
        Tone::Remote => Style::new(),
        Tone::Downloaded => Style::new().fg(Color::Cyan),
        Tone::Installed => Style::new().fg(Color::Green),
        Tone::Update => Style::new().fg(Color::Yellow),
        Tone::Failed => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        Tone::Busy => Style::new().fg(Color::Magenta).add_modifier(Modifier::BOLD),
        Tone::Unshared => Style::new().fg(Color::DarkGray),
    }
}
