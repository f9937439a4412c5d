//! The transfers pane: one gauge per running operation, from the runtime's
//! progress samples (bytes done / total, rate, ETA, active peers). Operations
//! that report no progress (file-list requests, uninstall, removal) show a spinner.
//! Then the operations that ended, with their outcome and reason, until cleared (`C`);
//! a failed one is retried with `R`. Below them, a line per game this peer sends to
//! others (not selectable).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Gauge, Paragraph, Wrap};

use super::{first_shown, pane_block, position_title, selected_style};
use crate::peer::DownloadProgress;
use crate::ui::app::{App, Ended, Outcome, Pane, TransferKey, TransferRow};
use crate::ui::format::{eta_label, format_size, progress_line, rate_label, sources_label};
use crate::ui::text::{elide_end, elide_middle, width};

const SPINNER: [&str; 4] = ["|", "/", "-", "\\"];
/// Columns of the bar drawn in characters when there is no colour.
const CHARACTER_BAR: usize = 10;
/// Each transfer takes a title line and a gauge line.
const ROW_HEIGHT: u16 = 2;

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let rows = app.transfer_rows();
    let ended = rows.iter().filter(|row| row.ended.is_some()).count();
    let queued = rows
        .iter()
        .filter(|row| matches!(row.key, TransferKey::Queued(_)))
        .count();
    let mut count = (rows.len() - ended - queued).to_string();
    for (n, what) in [(queued, "queued"), (ended, "ended")] {
        if n > 0 {
            count.push_str(&format!(" · {n} {what}"));
        }
    }
    let block = pane_block(app, Pane::Transfers, count);
    let inner = block.inner(area);
    let uploads = app.upload_lines();
    // Uploads take the bottom lines, at most half the pane while something else runs.
    let upload_height = match rows.is_empty() {
        true => inner.height,
        false => (uploads.len() as u16).min(inner.height / 2),
    };
    let [inner, upload_area] = Layout::vertical([
        Constraint::Fill(1),
        Constraint::Length(upload_height.min(uploads.len() as u16)),
    ])
    .areas(inner);
    let fit = usize::from((inner.height / ROW_HEIGHT).max(1));
    let selected = app.selected_transfer_index().unwrap_or(0);
    let first = first_shown(Some(selected), fit);
    let block = match position_title(first, fit, rows.len()) {
        Some(position) => block.title_bottom(position),
        None => block,
    };
    frame.render_widget(block, area);
    let lines: Vec<Line> = uploads
        .into_iter()
        .map(|line| Line::from(elide_end(&line, usize::from(upload_area.width))))
        .collect();
    frame.render_widget(Paragraph::new(lines), upload_area);
    if rows.is_empty() {
        if upload_area.height == 0 {
            let text = "Nothing running. Select a game and press d to download it.";
            frame.render_widget(Paragraph::new(Line::from(text)).wrap(Wrap { trim: true }), inner);
        }
        return;
    }
    let slots = Layout::vertical(vec![Constraint::Length(ROW_HEIGHT); fit]).split(inner);
    for (slot, (index, row)) in slots.iter().zip(rows.iter().enumerate().skip(first)) {
        let highlight = (index == selected).then(|| selected_style(app, Pane::Transfers));
        match (&row.ended, &row.key) {
            (Some(ended), _) => render_still(frame, *slot, row, &ended.time, ended_outcome(ended), highlight),
            // Waiting in the queue: no spinner, nothing moves.
            (None, TransferKey::Queued(_)) => render_still(frame, *slot, row, "", queued_look(row), highlight),
            (None, _) => render_transfer(frame, *slot, app, row, highlight),
        }
    }
}

fn render_transfer(frame: &mut Frame, area: Rect, app: &App, row: &TransferRow, highlight: Option<Style>) {
    let [title_area, gauge_area] = Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(area);
    let gauge_area = Rect {
        x: gauge_area.x + 2,
        width: gauge_area.width.saturating_sub(2),
        ..gauge_area
    };
    // Without colour the bar is drawn in characters after the label, which gets the rest.
    let label_room = match app.is_monochrome() {
        true => usize::from(gauge_area.width).saturating_sub(CHARACTER_BAR + 3),
        false => usize::from(gauge_area.width),
    };
    let label = row.progress.as_ref().map(|progress| gauge_label(progress, label_room));
    let mut facts = format!(
        " {}· {}",
        row.version
            .as_deref()
            .map(|version| format!("{version} "))
            .unwrap_or_default(),
        row.label
    );
    match (&row.progress, &label) {
        (Some(progress), Some((_, false))) => facts.push_str(&format!(" · {}", sources_label(progress))),
        (None, _) => {
            if let Some(total) = row.total_bytes {
                facts.push_str(&format!(" · {}", format_size(total)));
            }
        }
        _ => {}
    }
    render_title(frame, title_area, &row.name, &facts, highlight);
    match (&row.progress, label) {
        (Some(progress), Some((label, _))) if app.is_monochrome() => {
            let text = format!("{label} {}", character_bar(progress.fraction(), CHARACTER_BAR));
            frame.render_widget(Paragraph::new(Line::from(text)), gauge_area);
        }
        (Some(progress), Some((label, _))) => {
            let gauge = Gauge::default()
                .ratio(progress.fraction().clamp(0.0, 1.0))
                .label(label)
                .gauge_style(Style::new().fg(Color::Green).bg(Color::Black));
            frame.render_widget(gauge, gauge_area);
        }
        _ => {
            let spinner = SPINNER[app.spinner() % SPINNER.len()];
            let text = format!("{spinner} {}", row.activity);
            frame.render_widget(
                Paragraph::new(Line::styled(text, Style::new().fg(Color::Magenta))),
                gauge_area,
            );
        }
    }
}

/// A row's title line: the marker and name in bold (the selected one highlighted), then
/// `facts`. The name keeps most of the line; what is cut ends in an ellipsis.
fn render_title(frame: &mut Frame, area: Rect, name: &str, facts: &str, highlight: Option<Style>) {
    let marker = if highlight.is_some() { "> " } else { "  " };
    let room = usize::from(area.width);
    let name = format!(
        "{marker}{}",
        elide_middle(name, room.saturating_sub(width(facts).min(room / 2) + 2))
    );
    let facts = elide_end(facts, room.saturating_sub(width(&name)));
    let title = vec![
        Span::styled(name, highlight.unwrap_or_default().add_modifier(Modifier::BOLD)),
        Span::raw(facts),
    ];
    frame.render_widget(Paragraph::new(Line::from(title)), area);
}

/// How the line under a still row looks: its symbol (the meaning without colour), its
/// style and what it ends in.
type Look = (&'static str, Style, &'static str);

/// A failure ends in how to retry it.
fn ended_outcome(ended: &Ended) -> Look {
    match ended.outcome {
        Outcome::Done(_) => ("✓", Style::new().fg(Color::Green), ""),
        Outcome::Failed(_) => (
            "✗",
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
            " (R retries)",
        ),
        Outcome::Cancelled => ("-", Style::new().fg(Color::Yellow), ""),
    }
}

fn queued_look(row: &TransferRow) -> Look {
    if row.activity.starts_with("paused") {
        ("‖", Style::new().fg(Color::Yellow), "")
    } else {
        ("…", Style::new().fg(Color::Cyan), "")
    }
}

/// A row that does not move: an operation that ended (its name, what it was and when,
/// then how it ended and why) or a download waiting in the queue.
fn render_still(frame: &mut Frame, area: Rect, row: &TransferRow, time: &str, look: Look, highlight: Option<Style>) {
    let [title_area, outcome_area] = Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(area);
    let facts = if time.is_empty() {
        format!(" · {}", row.label)
    } else {
        format!(" · {} · {time}", row.label)
    };
    render_title(frame, title_area, &row.name, &facts, highlight);
    let (symbol, style, hint) = look;
    let room = usize::from(outcome_area.width).saturating_sub(2 + 2 + width(hint));
    let text = format!("  {symbol} {}{hint}", elide_end(&row.activity, room));
    frame.render_widget(Paragraph::new(Line::styled(text, style)), outcome_area);
}

/// `[#####-----]`, `columns` wide inside the brackets.
fn character_bar(fraction: f64, columns: usize) -> String {
    let filled = ((fraction.clamp(0.0, 1.0) * columns as f64).round() as usize).min(columns);
    format!("[{}{}]", "#".repeat(filled), "-".repeat(columns - filled))
}

/// The longest progress text that fits `width`, and whether it names the active peers.
fn gauge_label(progress: &DownloadProgress, width: usize) -> (String, bool) {
    let full = progress_line(progress).trim().to_owned();
    if full.chars().count() <= width {
        return (full, true);
    }
    let percent = format!("{:.1}%", progress.fraction() * 100.0);
    let (rate, eta) = (rate_label(progress), eta_label(progress));
    let bytes = size_pair(progress.bytes_done, progress.total_bytes);
    [
        format!("{percent} {bytes} {rate} {eta}"),
        format!("{percent} {rate} {eta}"),
    ]
    .into_iter()
    .find(|label| label.chars().count() <= width)
    .map_or((percent, false), |label| (label, false))
}

/// `1.0/4.0 GiB`, or `512.0 MiB/4.0 GiB` when the units differ.
fn size_pair(done: u64, total: u64) -> String {
    let (done, total) = (format_size(done), format_size(total));
    match (done.split_once(' '), total.split_once(' ')) {
        (Some((done_value, done_unit)), Some((total_value, total_unit))) if done_unit == total_unit => {
            format!("{done_value}/{total_value} {total_unit}")
        }
        _ => format!("{done}/{total}"),
    }
}
