//! The library pane: every game on the LAN and here, with its state.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState, Wrap};

use super::{first_shown, pane_block, position_title, selected_style};
use crate::ui::app::{App, LibraryRow, Pane, Tone};
use crate::ui::format::format_size;
use crate::ui::text::{elide_end, elide_middle, width};

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
    let room = usize::from(area.width.saturating_sub(2)).saturating_sub(MARKER);
    let columns = Columns::fit(&rows, room);
    let visible = usize::from(area.height.saturating_sub(3));
    let first = first_shown(app.selected_library_index(), visible);
    let block = match position_title(first, visible, rows.len()) {
        Some(position) => block.title_bottom(position),
        None => block,
    };
    let table_rows = rows.iter().map(|row| {
        let tone = tone_style(row.tone);
        Row::new(vec![
            Cell::from(elide_middle(&row.name, columns.name)),
            Cell::from(elide_end(&row.state, columns.state)).style(tone),
            Cell::from(elide_end(&row.version, columns.version)),
            Cell::from(size_cell(row)),
        ])
    });
    let header = Row::new(["Name", "State", "Version", "Size"]).style(Style::new().add_modifier(Modifier::BOLD));
    let widths =
        [columns.name, columns.state, columns.version, columns.size].map(|width| Constraint::Length(width as u16));
    let table = Table::new(table_rows, widths)
        .header(header)
        .block(block)
        .row_highlight_style(selected_style(app, Pane::Library))
        .highlight_symbol("> ");
    let mut state = TableState::default()
        .with_offset(first)
        .with_selected(app.selected_library_index());
    frame.render_stateful_widget(table, area, &mut state);
}

/// The `> ` selection marker.
const MARKER: usize = 2;
/// The name keeps at least this much (or half the line) before the state is cut.
const NAME_AT_LEAST: usize = 16;
/// A state is cut (with an ellipsis) to no less than this.
const STATE_AT_LEAST: usize = 14;
/// Versions longer than this are cut: the start tells versions apart.
const VERSION_AT_MOST: usize = 14;

fn size_cell(row: &LibraryRow) -> String {
    row.size.map(format_size).unwrap_or_default()
}

/// Column widths sized to what they hold: the name takes what it needs (not the whole
/// line, so the state stays next to it on a wide terminal), and when the line is short
/// the state gives up room first, down to [`STATE_AT_LEAST`], then the name is cut.
struct Columns {
    name: usize,
    state: usize,
    version: usize,
    size: usize,
}

impl Columns {
    fn fit(rows: &[LibraryRow], room: usize) -> Columns {
        let widest = |title: &str, cell: &dyn Fn(&LibraryRow) -> String| {
            rows.iter()
                .map(|row| width(&cell(row)))
                .chain([width(title)])
                .max()
                .unwrap_or(0)
        };
        let name_wanted = widest("Name", &|row| row.name.clone());
        let mut state = widest("State", &|row| row.state.clone());
        let version = widest("Version", &|row| row.version.clone()).min(VERSION_AT_MOST);
        let size = widest("Size", &size_cell);
        // One column of space after each of the first three.
        let others = |state: usize| state + 1 + version + 1 + size + 1;
        // The name is what tells rows apart: it may take up to half the line from the state.
        let name_needs = name_wanted.min((room / 2).max(NAME_AT_LEAST));
        let short = (name_needs + others(state)).saturating_sub(room);
        state = state.saturating_sub(short).max(STATE_AT_LEAST.min(state));
        let name = name_wanted.min(room.saturating_sub(others(state)));
        Columns {
            name,
            state,
            version,
            size,
        }
    }
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
