use clap::Parser;

fn main() -> anyhow::Result<()> {
    mesh_proxy::run(mesh_proxy::Args::parse())
}
