//! The whole screen as a pure function of `&App`: panes, status bar, and the
//! help overlay / confirmation dialog on top. No I/O, no sends.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};

use super::app::{App, LABEL_WIDTH, Level, Pane};
use super::format::{format_size, hashing_line};
use super::input::{InputMode, KEY_TABLE, KeyBinding};
use super::panes;
use super::text::{elide_start, fit_message, width};

/// The smallest terminal the layout is made for.
pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 24;

pub fn render(frame: &mut Frame, app: &App) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        render_too_small(frame, area);
        return;
    }
    let screen = Screen::of(area);
    panes::library::render(frame, screen.library, app);
    panes::peers::render(frame, screen.peers, app);
    panes::transfers::render(frame, screen.transfers, app);
    panes::log::render(frame, screen.log, app);
    render_status_bar(frame, screen.status, app);
    if let Some(dialog) = app.dialog() {
        render_dialog(frame, area, &dialog.title, &dialog.message);
    }
    if app.is_details_open() {
        render_details(frame, area, app);
    }
    if app.is_help_open() {
        render_help(frame, area, app);
    }
    if app.is_monochrome() {
        strip_colours(frame.buffer_mut());
    }
}

/// Leaves no colour in `buffer`, only modifiers. Not just a plainer palette: crossterm
/// writes a colour reset under `NO_COLOR` as a bare `CSI m`, which also ends reverse video
/// and bold (crossterm PR #1069), so one coloured cell in a selected row broke its
/// highlight. With no colour anywhere, no colour is ever written.
pub fn strip_colours(buffer: &mut ratatui::buffer::Buffer) {
    for cell in &mut buffer.content {
        cell.set_fg(Color::Reset).set_bg(Color::Reset);
    }
}

/// Where each part of the screen goes.
pub struct Screen {
    pub library: Rect,
    pub peers: Rect,
    pub transfers: Rect,
    pub log: Rect,
    pub status: Rect,
}

impl Screen {
    pub fn of(area: Rect) -> Screen {
        let [main, status] = Layout::vertical([Constraint::Min(0), Constraint::Length(2)]).areas(area);
        let [library, middle, log] =
            Layout::vertical([Constraint::Fill(3), Constraint::Fill(2), Constraint::Fill(2)]).areas(main);
        let [peers, transfers] = Layout::horizontal([Constraint::Fill(1), Constraint::Fill(1)]).areas(middle);
        Screen {
            library,
            peers,
            transfers,
            log,
            status,
        }
    }

    /// The columns and rows inside the log pane's border on a `width` x `height` screen.
    pub fn log_text_size(width: u16, height: u16) -> (usize, usize) {
        let log = Screen::of(Rect::new(0, 0, width, height)).log;
        (
            usize::from(log.width.saturating_sub(2)),
            usize::from(log.height.saturating_sub(2)),
        )
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
    // Hashing stands in for the address while it runs: at 80 columns there is room for one.
    // Attached, what runs the runtime says more than its address: the operator quits
    // knowing the service keeps running.
    let activity = match app.attached() {
        Some(attached) => format!("attached to {}, pid {}; q detaches", attached.runtime, attached.pid),
        None => app
            .hashing()
            .map_or_else(|| format!("listening on {}", app.listen_addr()), hashing_line),
    };
    let rest = format!(
        "  {free} │ {peers} peer{} │ {activity} │ ? help",
        if peers == 1 { "" } else { "s" },
    );
    let room = usize::from(area.width).saturating_sub(rest.chars().count() + 1);
    let line = Line::from(vec![
        Span::raw(format!(
            " {}",
            elide_start(&app.game_dir().display().to_string(), room.max(12))
        )),
        Span::raw(rest),
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
        Line::styled(fit_message(&status.text, usize::from(area.width)), style)
    } else if let Some(warning) = app.space_warning() {
        Line::styled(warning, Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD))
    } else {
        Line::styled(
            key_hints(app.focus(), usize::from(area.width)),
            Style::new().fg(Color::DarkGray),
        )
    };
    frame.render_widget(Paragraph::new(line), message);
}

/// The keys of the focused pane, most used first, as many as fit `columns`; `? keys` and
/// `q quit` always end the line.
fn key_hints(focus: Pane, columns: usize) -> String {
    let pane_keys: &[&str] = match focus {
        Pane::Library => &[
            "d download",
            "i install",
            "/ filter",
            "Enter details",
            "x uninstall",
            "u update",
            "s stream",
            "r remove",
            "c cancel",
            "v verify",
            "o sort",
        ],
        Pane::Transfers => &[
            "p pause",
            "c cancel",
            "R retry",
            "C clear ended",
            "J/K/N queue",
            "Enter details",
        ],
        Pane::Peers => &["Enter details", "Tab next pane", "j/k move", "g/G top/bottom"],
        Pane::Log => &["Tab next pane", "j/k move", "g/G top/bottom"],
    };
    let tail = "? keys · q quit";
    let mut line = String::new();
    for hint in pane_keys {
        if width(&line) + width(hint) + 3 + width(tail) > columns {
            break;
        }
        line.push_str(hint);
        line.push_str(" · ");
    }
    line + tail
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

/// The details popup's width on a screen `width` columns wide.
fn details_width(width: u16) -> u16 {
    width.saturating_sub(4).min(100)
}

/// The columns and rows of text the details view has on a `width` x `height` screen:
/// inside its border and padding, at most the screen's height less a row above and below.
pub fn details_text_size(width: u16, height: u16) -> (usize, usize) {
    (
        usize::from(details_width(width).saturating_sub(4)),
        usize::from(height.saturating_sub(4)),
    )
}

/// The details of a game or peer: labelled facts, scrolled when they do not fit.
fn render_details(frame: &mut Frame, area: Rect, app: &App) {
    let Some(details) = app.details() else {
        return;
    };
    let (columns, visible) = details_text_size(area.width, area.height);
    let rows = details.rows(columns);
    let first = app.details_scroll().min(rows.len().saturating_sub(visible));
    let shown = rows.len().min(visible);
    let popup = area.centered(
        Constraint::Length(details_width(area.width)),
        Constraint::Length(shown as u16 + 2),
    );
    let mut block = Block::bordered()
        .title(Line::styled(
            format!(" {} ", details.title),
            Style::new().add_modifier(Modifier::BOLD),
        ))
        .title_bottom(Line::from(" Esc close · j/k scroll "))
        .border_style(Style::new().fg(Color::Cyan))
        .padding(ratatui::widgets::Padding::horizontal(1));
    if let Some(position) = panes::position_title(first, shown, rows.len()) {
        block = block.title_bottom(position);
    }
    let lines: Vec<Line> = rows
        .into_iter()
        .skip(first)
        .take(shown)
        .map(|(label, text)| {
            Line::from(vec![
                Span::styled(
                    format!("{label:<LABEL_WIDTH$}"),
                    Style::new().add_modifier(Modifier::BOLD),
                ),
                Span::raw(text),
            ])
        })
        .collect();
    frame.render_widget(Clear, popup);
    frame.render_widget(Paragraph::new(lines).block(block), popup);
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

/// Every mode's keys in the help overlay, in this order.
const HELP_MODES: [InputMode; 5] = [
    InputMode::Normal,
    InputMode::Filter,
    InputMode::Dialog,
    InputMode::Details,
    InputMode::Help,
];

/// Whether the help has room for two columns of keys on a screen `width` columns wide.
fn help_in_two_columns(width: u16) -> bool {
    width >= 100
}

/// The help overlay on `area` for columns `tallest` rows high, and the rows it shows.
fn help_area(area: Rect, tallest: usize) -> (Rect, usize) {
    let height = (tallest as u16).saturating_add(2).min(area.height);
    let popup = area.centered(Constraint::Length(area.width.min(110)), Constraint::Length(height));
    (popup, usize::from(height.saturating_sub(2)))
}

/// The help's sections (one per mode) as columns of rows: one column on a narrow screen,
/// else two, split at the section boundary that evens them out.
fn help_columns(two: bool) -> Vec<Vec<Line<'static>>> {
    let key_width = KEY_TABLE
        .iter()
        .map(|binding| keys_label(binding).chars().count())
        .max()
        .unwrap_or(0);
    let sections: Vec<Vec<Line>> = HELP_MODES
        .iter()
        .map(|mode| {
            let mut lines = vec![Line::styled(
                mode.title(),
                Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
            )];
            lines.extend(bindings(*mode).map(|binding| {
                Line::from(vec![
                    Span::styled(
                        format!("{:<key_width$}  ", keys_label(binding)),
                        Style::new().add_modifier(Modifier::BOLD),
                    ),
                    Span::raw(binding.description),
                ])
            }));
            lines
        })
        .collect();
    let join = |sections: &[Vec<Line<'static>>]| {
        let mut lines = Vec::new();
        for section in sections {
            if !lines.is_empty() {
                lines.push(Line::from(""));
            }
            lines.extend(section.iter().cloned());
        }
        lines
    };
    if !two {
        return vec![join(&sections)];
    }
    let split = (1..sections.len())
        .min_by_key(|at| {
            let (left, right) = (join(&sections[..*at]).len(), join(&sections[*at..]).len());
            left.max(right)
        })
        .unwrap_or(1);
    vec![join(&sections[..split]), join(&sections[split..])]
}

/// How far the help can scroll on a `width` x `height` screen.
pub fn help_max_scroll(width: u16, height: u16) -> usize {
    let tallest = help_columns(help_in_two_columns(width))
        .iter()
        .map(Vec::len)
        .max()
        .unwrap_or(0);
    let (_, visible) = help_area(Rect::new(0, 0, width, height), tallest);
    tallest.saturating_sub(visible)
}

/// The help overlay, generated from [`KEY_TABLE`]: every mode's keys, in two columns when
/// there is room, scrolled with j/k when they do not fit.
fn render_help(frame: &mut Frame, area: Rect, app: &App) {
    let two = help_in_two_columns(area.width);
    let columns = help_columns(two);
    let tallest = columns.iter().map(Vec::len).max().unwrap_or(0);
    let (popup, visible) = help_area(area, tallest);
    let first = app.help_scroll().min(tallest.saturating_sub(visible));
    let mut block = Block::bordered()
        .title(Line::styled(" Help ", Style::new().add_modifier(Modifier::BOLD)))
        .border_style(Style::new().fg(Color::Cyan));
    if let Some(log_dir) = app.log_dir() {
        block = block.title_bottom(format!(" logs: {} ", log_dir.display()));
    }
    if let Some(position) = panes::position_title(first, visible, tallest) {
        block = block.title_bottom(position);
    }
    let inner = block.inner(popup);
    frame.render_widget(Clear, popup);
    frame.render_widget(block, popup);
    let inner = inner.inner(ratatui::layout::Margin::new(1, 0));
    let areas: Vec<Rect> = if two {
        Layout::horizontal([Constraint::Fill(1), Constraint::Fill(1)])
            .spacing(2)
            .split(inner)
            .to_vec()
    } else {
        vec![inner]
    };
    for (lines, area) in columns.into_iter().zip(areas) {
        let lines: Vec<Line> = lines.into_iter().skip(first).take(visible).collect();
        frame.render_widget(Paragraph::new(lines), area);
    }
}

#[cfg(test)]
mod tests {
    use ratatui::backend::TestBackend;

    use super::*;
    use crate::peer::{OperationKind, PeerEvent};
    use crate::ui::input::Action;
    use crate::ui::test_support::*;

    const SIZES: [(u16, u16); 2] = [(80, 24), (120, 40)];

    fn draw(app: &App, width: u16, height: u16) -> Vec<String> {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|frame| render(frame, app)).unwrap();
        screen(terminal.backend().buffer())
    }

    fn contains(screen: &[String], text: &str) -> bool {
        screen.iter().any(|row| row.contains(text))
    }

    use ratatui::Terminal;

    /// An app mid-download: Xonotic at a quarter, sampled.
    fn downloading() -> App {
        let mut app = app_with_library();
        app.update(active("xonotic", OperationKind::Download));
        app.update(PeerEvent::DownloadGameFilesBegin {
            id: "xonotic".into(),
            version: "0.8.6".into(),
            total_bytes: 4 * GIB,
            peers: vec![addr(1), addr(2)],
        });
        app.update(PeerEvent::DownloadProgress(progress("xonotic", GIB, 4 * GIB)));
        app
    }

    #[test]
    fn a_partial_source_is_marked_in_peers_and_counted_in_transfers() {
        let mut app = downloading();
        let mut sample = progress("xonotic", GIB, 4 * GIB);
        sample.peers[1].partial = true;
        (sample.seeds, sample.partial_sources) = (1, 1);
        app.update(PeerEvent::DownloadProgress(sample));
        // At 80x24 both are cut today, and the name here too (columns sized to content: issue 14).
        let screen = draw(&app, 120, 40);
        let text = screen.join("\n");
        assert!(contains(&screen, "bob (partial"), "{text}");
        assert!(!contains(&screen, "alice (partial"), "{text}");
        assert!(contains(&screen, "from 1 seed + 1 peer"), "{text}");
    }

    #[test]
    fn our_uploads_show_below_the_transfers_and_clear_when_they_stop() {
        let mut app = downloading();
        let upload = |to, rate| crate::peer::Upload {
            id: "xonotic".into(),
            to,
            bytes_per_second: rate,
        };
        app.update(PeerEvent::Uploads(vec![upload(addr(2), 2.1e6), upload(addr(9), 1e6)]));
        for (width, height) in SIZES {
            let screen = draw(&app, width, height);
            let text = screen.join("\n");
            // At 80x24 the second peer is cut off (columns sized to content: issue 14).
            assert!(contains(&screen, "↑ Xonotic to bob 2.1 MB/s"), "{text}");
            if width == 120 {
                assert!(
                    contains(&screen, "↑ Xonotic to bob 2.1 MB/s, 10.0.0.2:9 1.0 MB/s"),
                    "{text}"
                );
            }
            assert!(
                contains(&screen, "Xonotic 0.8.6 · download"),
                "the download still shows: {text}"
            );
        }
        app.update(PeerEvent::Uploads(Vec::new()));
        assert!(!contains(&draw(&app, 120, 40), "↑ Xonotic"));
    }

    #[test]
    fn a_long_failure_is_read_whole_in_the_log_and_the_status_line_keeps_its_cause() {
        // The reported case: at 80 columns the message stopped at "(127.0.0.1:41810: conne".
        let mut app = downloading();
        let reason = "every peer failed (127.0.0.1:41810: connection lost: timed out; \
                      127.0.0.1:41811: sent corrupt data for maps/dm1.pk3; not using it)";
        app.update(PeerEvent::DownloadGameFilesFailed {
            id: "xonotic".into(),
            reason: reason.into(),
        });
        for (width, height) in SIZES {
            let screen = draw(&app, width, height);
            let text = screen.join("\n");
            let status = screen.last().unwrap().trim_end();
            assert!(status.ends_with("not using it)"), "the cause's end shows: {text}");
            assert!(status.starts_with("download of Xonotic"), "{text}");
            // The log pane holds every word of it, across rows.
            let log_start = screen
                .iter()
                .position(|row| row.contains("download of Xonotic failed"))
                .unwrap();
            let log_text: String = screen[log_start..]
                .iter()
                .map(|row| row.trim_matches(|c| c == '│' || c == ' ').to_owned())
                .collect::<Vec<_>>()
                .join(" ");
            for word in reason.split(' ') {
                assert!(log_text.contains(word), "{word:?} is not in the log: {text}");
            }
        }
    }

    #[test]
    fn the_top_of_the_log_is_a_full_page() {
        // The reported case: `g` in the Log pane showed one line and three blank rows.
        let mut app = app_with_library();
        for index in 0..30 {
            app.update(PeerEvent::UninstallGameBegin {
                id: format!("g{index}"),
            });
        }
        app.set_screen_size(80, 24);
        app.apply(crate::ui::input::Action::PrevPane);
        app.apply(crate::ui::input::Action::Top);
        let screen = draw(&app, 80, 24);
        let text = screen.join("\n");
        let (_, rows) = Screen::log_text_size(80, 24);
        let log_rows: Vec<&String> = screen.iter().filter(|row| row.contains("uninstalling g")).collect();
        assert_eq!(log_rows.len(), rows, "{text}");
        assert!(log_rows[0].contains("uninstalling g0"), "{text}");
        // And Down from there scrolls at once.
        app.apply(crate::ui::input::Action::Down);
        let screen = draw(&app, 80, 24);
        assert!(!contains(&screen, "uninstalling g0 "), "{}", screen.join("\n"));
        assert!(contains(&screen, "uninstalling g1 "), "{}", screen.join("\n"));
    }

    fn buffer(app: &App, width: u16, height: u16) -> ratatui::buffer::Buffer {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|frame| render(frame, app)).unwrap();
        terminal.backend().buffer().clone()
    }

    /// What crossterm writes to draw `buffer` on a fresh screen, as ratatui's first frame.
    fn terminal_bytes(buffer: &ratatui::buffer::Buffer) -> String {
        use ratatui::backend::{Backend, CrosstermBackend};
        /// Keeps what the backend writes where the test can read it.
        #[derive(Clone, Default)]
        struct Shared(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);
        impl std::io::Write for Shared {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.borrow_mut().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let written = Shared::default();
        let mut backend = CrosstermBackend::new(written.clone());
        let width = buffer.area.width;
        let cells = buffer
            .content
            .iter()
            .enumerate()
            .map(|(index, cell)| (index as u16 % width, index as u16 / width, cell));
        backend.draw(cells).unwrap();
        backend.flush().unwrap();
        drop(backend);
        String::from_utf8(written.0.take()).unwrap()
    }

    #[test]
    fn without_colour_selection_focus_and_gauges_still_show() {
        let mut app = downloading();
        app.set_monochrome(true);
        for (width, height) in SIZES {
            let drawn = buffer(&app, width, height);
            let text = screen(&drawn).join("\n");
            assert!(
                drawn
                    .content
                    .iter()
                    .all(|cell| cell.fg == Color::Reset && cell.bg == Color::Reset),
                "a colour is left: {text}"
            );
            // The focused pane (Library) has double lines; the others single ones.
            let rows = screen(&drawn);
            assert!(rows[0].starts_with("╔ Library"), "{text}");
            assert!(contains(&rows, "┌ Peers") && contains(&rows, "┌ Log"), "{text}");
            // The selected row is reversed from its marker to the pane's edge.
            let y = rows.iter().position(|row| row.contains("> OpenArena")).unwrap() as u16;
            for x in 1..width - 1 {
                let cell = &drawn[(x, y)];
                assert!(cell.modifier.contains(Modifier::REVERSED), "column {x}: {text}");
            }
            // The gauge is a bar of characters.
            assert!(contains(&rows, "[##"), "{text}");
            assert!(contains(&rows, "-------]"), "{text}");
        }
    }

    #[test]
    fn without_colour_the_terminal_gets_no_colour_and_no_reset_mid_screen() {
        // The reported case: under NO_COLOR crossterm writes a colour reset as a bare `CSI m`,
        // which also ended the reverse video of the selected row part way along it.
        let mut app = downloading();
        let colour = terminal_bytes(&buffer(&app, 80, 24));
        assert!(
            colour.contains("\x1b[38;5;") || colour.contains("\x1b[36m") || colour.contains("\x1b[39m"),
            "the check sees colour"
        );
        app.set_monochrome(true);
        let bytes = terminal_bytes(&buffer(&app, 80, 24));
        // Once every cell is written, ratatui resets colours and attributes: that is fine.
        let bytes = bytes
            .strip_suffix("\x1b[39m\x1b[49m\x1b[59m\x1b[0m")
            .expect("the frame ends with its resets");
        assert!(bytes.contains("\x1b[7m"), "reverse video is written");
        // Every escape sequence is an attribute or a cursor move: no colour, no full reset.
        for sequence in bytes.split('\x1b').skip(1) {
            let end = sequence.find(|c: char| c.is_ascii_alphabetic()).unwrap();
            let (body, kind) = (&sequence[..end], &sequence[end..=end]);
            if kind != "m" {
                continue;
            }
            let codes = body.trim_start_matches('[');
            assert!(
                !codes.is_empty() && codes != "0",
                "a full reset mid-screen: {sequence:?}"
            );
            for code in codes.split(';') {
                let code: u32 = code.parse().unwrap();
                assert!(
                    !(30..=49).contains(&code) && !(90..=107).contains(&code),
                    "a colour: {sequence:?}"
                );
            }
        }
    }

    #[test]
    fn at_80x24_a_silent_a_left_and_an_unreachable_peer_show_how_they_answer() {
        let mut app = downloading();
        app.update(PeerEvent::LibraryUpdated(snapshot_with_absent_peers(
            std::time::Duration::from_secs(4),
        )));
        let screen = draw(&app, 80, 24);
        let text = screen.join("\n");
        let row = |name: &str| {
            screen
                .iter()
                .find(|row| row.contains(name))
                .cloned()
                .unwrap_or_default()
        };
        assert!(row("bob").contains("silent 4s"), "{text}");
        assert!(row("alice").contains("left"), "{text}");
        assert!(row("10.0.0.9:7").contains("no answer"), "{text}");
        assert!(row("bob").contains("20.0 MB/s"), "the rate stays at 80 columns: {text}");
        assert!(contains(&screen, "Games"), "{text}");
        assert!(contains(&screen, "Peers 1, 2 absent"), "{text}");
        assert!(
            contains(&screen, " 1 peer │"),
            "the status bar counts who answers: {text}"
        );

        let mut idle = app_with_library();
        idle.update(PeerEvent::LibraryUpdated(snapshot_with_absent_peers(
            std::time::Duration::from_secs(4),
        )));
        let screen = draw(&idle, 80, 24);
        assert!(contains(&screen, "gone: alice left"), "{}", screen.join("\n"));
    }

    /// Twelve games with long names, 5 peers sending, 3 transfers and a long failure.
    fn busy() -> App {
        let mut snapshot = snapshot();
        for index in 0..8 {
            snapshot.games.push(game(
                &format!("extra{index}"),
                &format!("The Extraordinarily Long Adventure Game Number {index}"),
                crate::peer::GameState::RemoteOnly,
                None,
                Some("1.0"),
                GIB,
            ));
        }
        snapshot.peers = ["alice", "bob", "carol", "dave", "erin"]
            .iter()
            .enumerate()
            .map(|(index, name)| peer(index as u16 + 1, name, 2))
            .collect();
        let mut app = app();
        app.update(PeerEvent::LibraryUpdated(snapshot));
        app.update(PeerEvent::ActiveOperations(
            ["xonotic", "extra0", "extra1"]
                .map(|id| crate::peer::ActiveOperation {
                    id: id.into(),
                    kind: OperationKind::Download,
                })
                .to_vec(),
        ));
        for id in ["xonotic", "extra0", "extra1"] {
            app.update(PeerEvent::DownloadGameFilesBegin {
                id: id.into(),
                version: "1.0".into(),
                total_bytes: 4 * GIB,
                peers: vec![addr(1), addr(2)],
            });
            app.update(PeerEvent::DownloadProgress(progress(id, GIB, 4 * GIB)));
        }
        app.update(PeerEvent::DownloadGameFilesFailed {
            id: "quake".into(),
            reason: "every peer failed (10.0.0.2:3: connection lost: timed out, 10.0.0.2:4: refused: the game is not shared here)".into(),
        });
        for _ in 0..10 {
            app.apply(Action::Down);
        }
        app
    }

    #[test]
    fn a_busy_screen_at_80x24_keeps_the_rate_the_scroll_position_and_marks_each_cut() {
        let app = busy();
        let screen = draw(&app, 80, 24);
        let text = screen.join("\n");
        assert!(contains(&screen, "Sending"), "the rate column stays: {text}");
        assert!(contains(&screen, "90.0 MB/s"), "alice sends to three downloads: {text}");
        let library_rows = app.library_rows().len();
        let selected = app.selected_library_index().unwrap() + 1;
        assert!(
            screen
                .iter()
                .any(|row| row.contains(&format!("-{selected} of {library_rows} "))),
            "the library says which rows it shows: {text}"
        );
        assert!(
            contains(&screen, "The Extraord…g Adventure Game Number 4"),
            "a cut name ends in an ellipsis: {text}"
        );
        assert!(
            contains(&screen, "1-2 of 4 "),
            "the transfers (3 running, 1 failed) say which of them show: {text}"
        );
        assert!(contains(&screen, "timed out"), "the failure keeps its cause: {text}");
        assert!(contains(&screen, "? keys · q quit"), "{text}");
        assert!(contains(&screen, "i install"), "{text}");
        assert!(contains(&screen, "/ filter"), "{text}");
    }

    #[test]
    fn on_a_wide_terminal_the_state_stays_next_to_the_name() {
        let app = app_with_library();
        let screen = draw(&app, 200, 40);
        let row = screen.iter().find(|row| row.contains("OpenArena")).unwrap();
        let name = row.find("OpenArena").unwrap();
        let state = row.find("installed").unwrap();
        assert!(state - name < 30, "{row}");
    }

    #[test]
    fn every_pane_and_the_status_bar_are_on_screen() {
        let mut app = downloading();
        app.set_free_space(Some(42 * GIB));
        for (width, height) in SIZES {
            let screen = draw(&app, width, height);
            for title in [" Library ", " Peers ", " Transfers ", " Log "] {
                assert!(
                    contains(&screen, title),
                    "{title} missing at {width}x{height}:\n{}",
                    screen.join("\n")
                );
            }
            for game in ["OpenArena", "Quake", "Warsow", "Xonotic", "mystuff"] {
                assert!(contains(&screen, game), "{game} missing at {width}x{height}");
            }
            assert!(contains(&screen, "alice"), "peer missing at {width}x{height}");
            // The per-peer rate stays at every size; the address is given up first.
            assert!(contains(&screen, "30.0 MB/s"), "rate missing at {width}x{height}");
            if width >= 120 {
                assert!(contains(&screen, "10.0.0.2:1"), "address missing at {width}x{height}");
            }
            assert!(contains(
                &screen,
                " /games  42.0 GiB free │ 2 peers │ listening on 0.0.0.0:14000"
            ));
            assert!(contains(&screen, "downloading Xonotic 0.8.6 (4.0 GiB) from 2 peers"));
        }
    }

    #[test]
    fn the_gauge_shows_the_sampled_percent() {
        let app = downloading();
        for (width, height) in SIZES {
            let screen = draw(&app, width, height);
            let gauge = screen
                .iter()
                .find(|row| row.contains("25.0%"))
                .unwrap_or_else(|| panic!("no 25.0% at {width}x{height}:\n{}", screen.join("\n")));
            assert!(gauge.contains("1.0"), "{gauge}");
            assert!(gauge.contains("50.0 MB/s"), "{gauge}");
            assert!(
                contains(&screen, "downloading 25%"),
                "library state at {width}x{height}"
            );
        }
        // The wide layout has room for the whole progress line, active peers included.
        assert!(contains(&draw(&app, 120, 40), "ETA 40s  2 peers"));
    }

    #[test]
    fn the_help_overlay_lists_every_key_of_the_key_table() {
        for (width, height) in SIZES {
            let mut app = app_with_library();
            app.set_screen_size(width, height);
            app.apply(Action::ToggleHelp);
            // Every page, down to the last (bounded: one row per key at most).
            let mut pages = vec![draw(&app, width, height)];
            for _ in 0..KEY_TABLE.len() {
                app.apply(Action::PageDown);
                let page = draw(&app, width, height);
                if pages.last() == Some(&page) {
                    break;
                }
                pages.push(page);
            }
            assert_eq!(app.input_mode(), InputMode::Help, "scrolling keeps the help open");
            if width < 100 {
                assert!(pages.len() > 1, "at {width}x{height} the help scrolls");
                assert!(contains(&pages[0], "of "), "and says where it is");
            }
            for binding in KEY_TABLE.iter().filter(|binding| HELP_MODES.contains(&binding.mode)) {
                let keys = keys_label(binding);
                // The keys as a word of their own, then the description.
                let listed = pages.iter().flatten().any(|row| {
                    row.match_indices(&keys).any(|(at, _)| {
                        row[..at].ends_with(' ') && row[at + keys.len()..].trim_start().starts_with(binding.description)
                    })
                });
                assert!(
                    listed,
                    "{keys} ({}) not listed at {width}x{height}:\n{}",
                    binding.description,
                    pages.concat().join("\n")
                );
            }
        }
    }

    #[test]
    fn the_details_view_at_80x24_shows_the_facts_and_scrolls_when_they_do_not_fit() {
        let mut app = app();
        let mut library = snapshot();
        library.games[3].description = Some("Fast-paced free arena shooter with a long description.".into());
        library.games[3]
            .peers
            .extend((3..=30).map(|port| crate::peer::PeerGameVersion {
                addr: addr(port),
                peer_name: format!("peer{port}"),
                version: "0.8.6".into(),
                size: 3 * GIB,
                expanded_size: None,
            }));
        app.update(PeerEvent::LibraryUpdated(library));
        app.set_screen_size(80, 24);
        select(&mut app, "Xonotic");
        app.apply(Action::Details);
        let screen = draw(&app, 80, 24);
        assert!(contains(&screen, " Xonotic (xonotic) "), "{}", screen.join("\n"));
        assert!(contains(&screen, "About       Fast-paced free arena shooter"));
        assert!(contains(&screen, "Peers       alice (10.0.0.2:1): 0.8.6, 3.0 GiB"));
        assert!(contains(&screen, "Esc close"));
        assert!(contains(&screen, " 1-20 of "), "{}", screen.join("\n"));
        assert!(!contains(&screen, "Last error"), "below the first page");

        app.apply(Action::Bottom);
        let screen = draw(&app, 80, 24);
        assert!(contains(&screen, "Last error  none"), "{}", screen.join("\n"));
        assert!(!contains(&screen, "About"));
    }

    /// The key table as the README shows it: one table, a row per binding, each mode's
    /// keys under its title.
    fn markdown_keys() -> String {
        let mut table = String::from("| keys | action |\n|---|---|\n");
        for mode in HELP_MODES {
            if mode != InputMode::Normal {
                table.push_str(&format!("| **{}** | |\n", mode.title()));
            }
            for binding in bindings(mode) {
                let keys: Vec<String> = binding.keys.iter().map(|key| format!("`{}`", key.label())).collect();
                table.push_str(&format!("| {} | {} |\n", keys.join(" "), binding.description));
            }
        }
        table
    }

    #[test]
    fn the_readme_lists_the_key_table() {
        let readme_path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
        let readme = std::fs::read_to_string(readme_path).unwrap();
        let (start, end) = ("<!-- keys: generated from KEY_TABLE -->\n", "<!-- keys end -->");
        let from = readme.find(start).expect("the README marks its keys table") + start.len();
        let to = from + readme[from..].find(end).expect("the README marks the table's end");
        let expected = markdown_keys();
        if readme[from..to] != expected && std::env::var_os("LANSPREAD_UPDATE_README").is_some() {
            std::fs::write(readme_path, format!("{}{expected}{}", &readme[..from], &readme[to..])).unwrap();
            return;
        }
        assert_eq!(
            readme[from..to],
            expected,
            "README keys table differs from KEY_TABLE; rerun with LANSPREAD_UPDATE_README=1 to rewrite it"
        );
    }

    #[test]
    fn ended_transfers_show_their_outcome_and_a_failure_how_to_retry() {
        let mut app = app_with_library();
        app.update(PeerEvent::ActiveOperations(vec![crate::peer::ActiveOperation {
            id: "xonotic".into(),
            kind: OperationKind::Download,
        }]));
        app.update(PeerEvent::DownloadGameFilesFailed {
            id: "xonotic".into(),
            reason: "peers gone".into(),
        });
        app.update(PeerEvent::UninstallGameFinished { id: "openarena".into() });
        app.update(PeerEvent::ActiveOperations(Vec::new()));
        let screen = draw(&app, 80, 24);
        let text = screen.join("\n");
        assert!(contains(&screen, "Transfers 0 · 2 ended"), "{text}");
        assert!(contains(&screen, "OpenArena · uninstall · 12:00:00"), "{text}");
        assert!(contains(&screen, "✓ done"), "{text}");
        assert!(contains(&screen, "✗ failed: peers gone (R retries)"), "{text}");
        assert!(
            contains(&screen, "download failed: R retries"),
            "the library row is marked: {text}"
        );
    }

    #[test]
    fn a_terminal_below_80x24_gets_a_clear_message() {
        let app = app_with_library();
        for (width, height) in [(79, 24), (80, 23), (40, 10)] {
            let screen = draw(&app, width, height);
            assert!(contains(&screen, "Terminal too small"), "{width}x{height}");
            assert!(!contains(&screen, " Library "), "{width}x{height}");
        }
        assert!(contains(&draw(&app, 60, 20), "60x20: lanspread needs at least 80x24"));
        assert!(!contains(&draw(&app, 80, 24), "Terminal too small"));
    }

    #[test]
    fn resizing_redraws_for_the_new_size() {
        let app = downloading();
        let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();
        terminal.draw(|frame| render(frame, &app)).unwrap();
        assert!(contains(&screen(terminal.backend().buffer()), " Transfers "));
        for (width, height, expect) in [
            (80, 24, " Transfers "),
            (60, 20, "Terminal too small"),
            (100, 30, " Log "),
        ] {
            terminal.backend_mut().resize(width, height);
            terminal.draw(|frame| render(frame, &app)).unwrap();
            let buffer = terminal.backend().buffer();
            assert_eq!((buffer.area.width, buffer.area.height), (width, height));
            let screen = screen(buffer);
            assert!(
                contains(&screen, expect),
                "{expect} at {width}x{height}:\n{}",
                screen.join("\n")
            );
            if width >= MIN_WIDTH {
                let last = &screen[usize::from(height) - 2];
                assert!(last.contains("listening on"), "status bar not at the bottom: {last}");
                assert!(!contains(&screen, "Terminal too small"));
            }
        }
    }

    #[test]
    fn a_confirmation_dialog_shows_its_question_and_keys() {
        let mut app = app_with_library();
        select(&mut app, "OpenArena");
        app.apply(Action::Uninstall);
        let screen = draw(&app, 80, 24);
        assert!(contains(&screen, "Uninstall OpenArena?"));
        assert!(contains(&screen, "y: yes, do it"), "{}", screen.join("\n"));
    }

    #[test]
    fn the_status_line_shows_refusals_and_the_filter_prompt() {
        let mut app = app_with_library();
        select(&mut app, "Xonotic");
        app.apply(Action::Update);
        assert!(contains(
            &draw(&app, 80, 24),
            "Xonotic is not downloaded: press d to download it first"
        ));
        app.set_free_space(Some(6 * GIB));
        app.apply(Action::Down);
        app.apply(Action::Up);
        assert!(contains(&draw(&app, 120, 40), "press s for a streamed install"));
        app.apply(Action::StartFilter);
        app.apply(Action::FilterInput('q'));
        let screen = draw(&app, 80, 24);
        assert!(contains(&screen, "/q_"));
        assert!(contains(&screen, "filter: q"));
        assert!(!contains(&screen, "Xonotic"));
    }

    #[test]
    fn an_install_shows_files_and_bytes_written() {
        let mut app = app_with_library();
        app.update(active("quake", OperationKind::Install));
        app.update(PeerEvent::InstallGameProgress {
            id: "quake".into(),
            files: 12,
            bytes: GIB,
        });
        for (width, height) in SIZES {
            let screen = draw(&app, width, height);
            assert!(contains(&screen, "Quake · install"), "{}", screen.join("\n"));
            assert!(contains(&screen, "unpacked 12 files, 1.0 GiB"), "{width}x{height}");
        }
    }

    #[test]
    fn a_long_game_dir_is_shortened_from_the_left_to_keep_the_status_bar_whole() {
        let mut app = crate::ui::app::App::new(
            std::path::PathBuf::from("/tmp/lanspread-demo-vUcBaI/a/long/way/down/you/games"),
            std::net::SocketAddr::from(([127, 0, 0, 1], 40000)),
        );
        app.set_free_space(Some(52 * GIB));
        let screen = draw(&app, 80, 24);
        let bar = &screen[22];
        assert!(bar.starts_with(" …"), "{bar}");
        assert!(
            bar.contains("/you/games  52.0 GiB free │ 0 peers │ listening on 127.0.0.1:40000 │ ? help"),
            "{bar}"
        );
        let wide = draw(&app, 120, 40);
        assert!(wide[38].contains(" /tmp/lanspread-demo-vUcBaI/a/long/way/down/you/games  52.0 GiB free"));
    }

    #[test]
    fn hashing_shows_in_the_status_bar_at_80_columns() {
        let mut app = app_with_library();
        app.set_free_space(Some(42 * GIB));
        let progress = |games: &[&str], done| {
            PeerEvent::HashingProgress(crate::peer::HashingProgress {
                games: games.iter().map(|id| id.to_string()).collect(),
                done_bytes: done,
                total_bytes: 40 * GIB,
            })
        };
        app.update(progress(&["quake", "openarena", "warsow"], 12 * GIB + 2 * GIB / 5));
        let screen = draw(&app, 80, 24);
        assert_eq!(
            screen[22].trim_end(),
            " /games  42.0 GiB free │ 2 peers │ hashing 3 games, 12.4 of 40.0 GiB │ ? help",
            "{}",
            screen.join("\n")
        );
        assert!(
            contains(&screen, "hashing, not shared yet"),
            "the library says why it is not shared"
        );
        app.update(progress(&["warsow"], 39 * GIB));
        assert!(draw(&app, 80, 24)[22].contains("│ hashing 1 game, 39.0 of 40.0 GiB │ ? help"));
        app.update(PeerEvent::LocalLibraryChanged {
            ids: vec!["quake".into()],
        });
        assert!(contains(&draw(&app, 80, 24), "hashed, now shared: Quake"));
        app.update(PeerEvent::HashingFinished {
            games: 3,
            bytes: 40 * GIB,
            elapsed: std::time::Duration::from_secs(31),
        });
        let screen = draw(&app, 80, 24);
        assert!(
            screen[22].contains("│ listening on 0.0.0.0:14000 │ ? help"),
            "{}",
            screen[22]
        );
        assert!(contains(&screen, "hashed 3 games (40.0 GiB) in 31s"));
        assert!(!contains(&screen, "hashing"));
    }

    #[test]
    fn an_empty_lan_explains_itself() {
        let screen = draw(&app(), 80, 24);
        assert!(contains(&screen, "No games yet."));
        assert!(contains(&screen, "No peers yet."));
        assert!(contains(&screen, "Nothing running."));
    }
}
