//! `cargo xtask`: project orchestration.
fn main() -> anyhow::Result<()> {
    anyhow::bail!("usage: cargo xtask <train|bench|ci|tidy|data> ...")
}
