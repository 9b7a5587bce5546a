//! The monitor page served at `/`: one self-contained HTML document (no
//! external scripts, styles or fonts), talking to the same WebSocket and
//! REST API as any client.

/// The page.
pub const PAGE: &str = include_str!("monitor.html");
