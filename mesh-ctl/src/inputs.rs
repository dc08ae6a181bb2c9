//! Reads what `-f` names: files, directories (recursively, `.yaml`, `.yml`
//! and `.json` files in path order) and `-` for standard input, as
//! `meshctl validate` and the control plane's loader read them.

use std::io::Read;
use std::path::{Path, PathBuf};

use mesh_api::load::{self, Problem, Report};

/// One input's text and the name problems give it.
#[derive(Debug)]
pub struct Input {
    pub name: String,
    pub text: String,
}

impl Input {
    /// Reads the input as the control plane will.
    pub fn load(&self) -> Report {
        load::load_str(&self.name, &self.text)
    }
}

/// Every input `files` names; what cannot be read is a problem (`file:0:
/// cannot read: ...`, as `meshctl validate` says it).
pub fn read(files: &[PathBuf]) -> (Vec<Input>, Vec<Problem>) {
    let mut inputs = Vec::new();
    let mut problems = Vec::new();
    for file in files {
        if file.as_os_str() == "-" {
            let mut text = String::new();
            match std::io::stdin().lock().read_to_string(&mut text) {
                Ok(_) => inputs.push(Input {
                    name: "<stdin>".into(),
                    text,
                }),
                Err(err) => problems.push(unreadable("<stdin>", &err)),
            }
            continue;
        }
        let paths = if file.is_dir() {
            match config_files(file) {
                Ok(paths) => paths,
                Err(err) => {
                    problems.push(unreadable(&file.display().to_string(), &err));
                    continue;
                }
            }
        } else {
            vec![file.clone()]
        };
        for path in paths {
            let name = path.display().to_string();
            match std::fs::read_to_string(&path) {
                Ok(text) => inputs.push(Input { name, text }),
                Err(err) => problems.push(unreadable(&name, &err)),
            }
        }
    }
    (inputs, problems)
}

fn unreadable(name: &str, err: &std::io::Error) -> Problem {
    Problem {
        file: name.to_owned(),
        line: 0,
        subject: None,
        path: None,
        reason: format!("cannot read: {err}"),
    }
}

fn config_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files.extend(config_files(&path)?);
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}
