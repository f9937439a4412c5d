//! The control socket (README, "Runtime and front ends"): one runtime per state dir, and
//! every front end (the TUI, `get`, `status`, ...) talks to it. This step holds the wire:
//! what a front end and a runtime say to each other. The socket itself comes next.

pub mod wire;
