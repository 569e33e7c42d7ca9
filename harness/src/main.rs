//! The `roam` command.
fn main() {}
