//! `meshctl demo`: Bookinfo on the local mesh, from files built into
//! meshctl: the four services (with reviews v1, v2 and v3) as LocalWorkloads,
//! the Bookinfo Gateway and VirtualService on the ingress gateway, and the
//! DestinationRules that define the versions' subsets. Start-up ends with
//! the first product page that shows reviews.

use std::io::Write;
use std::process::ExitCode;

use super::up::{FirstPage, Options};
use crate::inputs::Input;

/// The files, as `meshctl local up -f` would read them from the repository.
const FILES: [(&str, &str); 3] = [
    (
        "examples/bookinfo/platform/local/bookinfo.yaml",
        include_str!("../../../examples/bookinfo/platform/local/bookinfo.yaml"),
    ),
    (
        "examples/bookinfo/networking/bookinfo-gateway.yaml",
        include_str!("../../../examples/bookinfo/networking/bookinfo-gateway.yaml"),
    ),
    (
        "examples/bookinfo/networking/destination-rule-all.yaml",
        include_str!("../../../examples/bookinfo/networking/destination-rule-all.yaml"),
    ),
];

/// A good product page shows the book's details and its reviews.
const PAGE: FirstPage = FirstPage {
    path: "/productpage",
    holds: &["<h2>Book Details</h2>", "<h2>Book Reviews</h2>"],
    shows: "with reviews",
};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub options: Options,
}

pub fn run(args: &Args, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let inputs: Vec<Input> = FILES
        .iter()
        .map(|(name, text)| Input {
            name: (*name).to_owned(),
            text: (*text).to_owned(),
        })
        .collect();
    super::start(&inputs, Vec::new(), Some(PAGE), &args.options, out)
}
