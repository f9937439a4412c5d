//! The whole screen as a pure function of `&App`: panes, status bar, and the
//! help overlay / confirmation dialog on top. No I/O, no sends.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};

use super::app::{App, Level};
use super::format::format_size;
use super::input::{InputMode, KEY_TABLE, KeyBinding};
use super::panes;

/// The smallest terminal the layout is made for.
pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 24;

pub fn render(frame: &mut Frame, app: &App) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        render_too_small(frame, area);
        return;
    }
    let [main, status] = Layout::vertical([Constraint::Min(0), Constraint::Length(2)]).areas(area);
    let [library, middle, log] =
        Layout::vertical([Constraint::Fill(3), Constraint::Fill(2), Constraint::Fill(2)]).areas(main);
    let [peers, transfers] = Layout::horizontal([Constraint::Fill(1), Constraint::Fill(1)]).areas(middle);
    panes::library::render(frame, library, app);
    panes::peers::render(frame, peers, app);
    panes::transfers::render(frame, transfers, app);
    panes::log::render(frame, log, app);
    render_status_bar(frame, status, app);
    if let Some(dialog) = app.dialog() {
        render_dialog(frame, area, &dialog.title, &dialog.message);
    }
    if app.is_help_open() {
        render_help(frame, area, app);
    }
}

fn render_too_small(frame: &mut Frame, area: Rect) {
    let text = vec![
        Line::styled("Terminal too small", Style::new().add_modifier(Modifier::BOLD)),
        Line::from(format!(
            "{}x{}: lanspread needs at least {MIN_WIDTH}x{MIN_HEIGHT}",
            area.width, area.height
        )),
        Line::from("Enlarge the window, or press q to quit."),
    ];
    let height = (text.len() as u16).min(area.height);
    let centered = area.centered_vertically(Constraint::Length(height));
    frame.render_widget(Paragraph::new(text).centered().wrap(Wrap { trim: true }), centered);
}

fn render_status_bar(frame: &mut Frame, area: Rect, app: &App) {
    let [facts, message] = Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(area);
    let free = app
        .free_space()
        .map_or_else(|| "? free".to_owned(), |free| format!("{} free", format_size(free)));
    let peers = app.peer_count();
    let bar = Style::new().add_modifier(Modifier::REVERSED);
    let line = Line::from(vec![
        Span::raw(format!(" {}  {free}", app.game_dir().display())),
        Span::raw(format!(" │ {peers} peer{}", if peers == 1 { "" } else { "s" })),
        Span::raw(format!(" │ listening on {}", app.listen_addr())),
        Span::raw(" │ ? help"),
    ]);
    frame.render_widget(Paragraph::new(line).style(bar), facts);

    let line = if app.is_filtering() {
        Line::from(vec![
            Span::styled("/", Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(app.filter().to_owned()),
            Span::styled("_", Style::new().add_modifier(Modifier::SLOW_BLINK)),
            Span::styled("   Enter keeps · Esc clears", Style::new().fg(Color::DarkGray)),
        ])
    } else if let Some(status) = app.status() {
        let style = match status.level {
            Level::Info => Style::new(),
            Level::Warn => Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
            Level::Error => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        };
        Line::styled(status.text.clone(), style)
    } else if let Some(warning) = app.space_warning() {
        Line::styled(warning, Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD))
    } else {
        Line::styled(
            "Enter/d download · s stream · u update · i install · x uninstall · r remove · c cancel · / filter · q quit",
            Style::new().fg(Color::DarkGray),
        )
    };
    frame.render_widget(Paragraph::new(line), message);
}

fn render_dialog(frame: &mut Frame, area: Rect, title: &str, message: &str) {
    let keys: Vec<String> = bindings(InputMode::Dialog)
        .map(|binding| format!("{}: {}", keys_label(binding), binding.description))
        .collect();
    let width = area.width.min(64);
    let text_width = usize::from(width.saturating_sub(4)).max(1);
    let message_lines = message.chars().count().div_ceil(text_width) + 1;
    let height = (message_lines as u16 + 5).min(area.height);
    let popup = area.centered(Constraint::Length(width), Constraint::Length(height));
    let block = Block::bordered()
        .title(Line::styled(
            format!(" {title} "),
            Style::new().add_modifier(Modifier::BOLD),
        ))
        .border_style(Style::new().fg(Color::Yellow));
    let text = vec![
        Line::from(message.to_owned()),
        Line::from(""),
        Line::styled(keys.join("   "), Style::new().add_modifier(Modifier::BOLD)),
    ];
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(text)
            .wrap(Wrap { trim: true })
            .block(block.padding(ratatui::widgets::Padding::horizontal(1))),
        popup,
    );
}

fn bindings(mode: InputMode) -> impl Iterator<Item = &'static KeyBinding> {
    KEY_TABLE.iter().filter(move |binding| binding.mode == mode)
}

/// `k / ↑`: every key of a binding, as the help overlay shows it.
pub fn keys_label(binding: &KeyBinding) -> String {
    binding
        .keys
        .iter()
        .map(|key| key.label())
        .collect::<Vec<_>>()
        .join(" / ")
}

/// The help overlay, generated from [`KEY_TABLE`]: the main keys on the left,
/// the keys of the filter, dialogs and this overlay on the right.
fn render_help(frame: &mut Frame, area: Rect, app: &App) {
    let columns = [
        vec![InputMode::Normal],
        vec![InputMode::Filter, InputMode::Dialog, InputMode::Help],
    ];
    let column_lines: Vec<Vec<Line>> = columns
        .iter()
        .map(|modes| {
            let key_width = modes
                .iter()
                .flat_map(|mode| bindings(*mode))
                .map(|binding| keys_label(binding).chars().count())
                .max()
                .unwrap_or(0);
            let mut lines = Vec::new();
            for mode in modes {
                if !lines.is_empty() {
                    lines.push(Line::from(""));
                }
                lines.push(Line::styled(
                    mode.title(),
                    Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
                ));
                for binding in bindings(*mode) {
                    lines.push(Line::from(vec![
                        Span::styled(
                            format!("{:<key_width$}  ", keys_label(binding)),
                            Style::new().add_modifier(Modifier::BOLD),
                        ),
                        Span::raw(binding.description),
                    ]));
                }
            }
            lines
        })
        .collect();
    let tallest = column_lines.iter().map(Vec::len).max().unwrap_or(0) as u16;
    let popup = area.centered(
        Constraint::Length(area.width.min(100)),
        Constraint::Length((tallest + 2).min(area.height)),
    );
    let mut block = Block::bordered()
        .title(Line::styled(" Help ", Style::new().add_modifier(Modifier::BOLD)))
        .border_style(Style::new().fg(Color::Cyan));
    if let Some(log_dir) = app.log_dir() {
        block = block.title_bottom(format!(" logs: {} ", log_dir.display()));
    }
    let inner = block.inner(popup);
    frame.render_widget(Clear, popup);
    frame.render_widget(block, popup);
    let [left, right] = Layout::horizontal([Constraint::Fill(3), Constraint::Fill(2)])
        .spacing(2)
        .areas(inner.inner(ratatui::layout::Margin::new(1, 0)));
    let mut column_lines = column_lines.into_iter();
    for area in [left, right] {
        let lines = column_lines.next().unwrap_or_default();
        frame.render_widget(Paragraph::new(lines), area);
    }
}
