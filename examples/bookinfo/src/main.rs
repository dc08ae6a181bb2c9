//! `bookinfo productpage|details|reviews|ratings [--port N] [--address IP]`

use clap::Parser;

fn main() -> anyhow::Result<()> {
    bookinfo::cli::run(bookinfo::Args::parse())
}
