//! Default locations: the data directory and the remote verifier's state directory, after the
//! XDG base-directory conventions.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

/// The data directory: `--data`, else `$STELE_DATA`, else `$XDG_DATA_HOME/stele`, else
/// `~/.local/share/stele`.
///
/// # Errors
/// When none of these is set (no `HOME` either).
pub fn data_dir(arg: Option<&Path>) -> Result<PathBuf> {
    data_dir_from(arg, &|k| std::env::var_os(k).filter(|v| !v.is_empty()))
}

fn data_dir_from(
    arg: Option<&Path>,
    env: &dyn Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<PathBuf> {
    if let Some(p) = arg {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = env("STELE_DATA") {
        return Ok(PathBuf::from(p));
    }
    xdg_dir(env, "XDG_DATA_HOME", ".local/share", "--data")
}

/// Where `stele verify --url` keeps the last checkpoint it trusted for `origin`:
/// `$XDG_STATE_HOME/stele/<origin>.checkpoint` (else under `~/.local/state`), with the origin
/// made safe as a file name by [`sanitize_origin`].
///
/// # Errors
/// When neither `XDG_STATE_HOME` nor `HOME` is set.
pub fn default_state_file(origin: &str) -> Result<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    let dir = xdg_dir(&env, "XDG_STATE_HOME", ".local/state", "--state")?;
    Ok(dir.join(format!("{}.checkpoint", sanitize_origin(origin))))
}

fn xdg_dir(
    env: &dyn Fn(&str) -> Option<std::ffi::OsString>,
    var: &str,
    home_rel: &str,
    flag: &str,
) -> Result<PathBuf> {
    if let Some(p) = env(var) {
        return Ok(PathBuf::from(p).join("stele"));
    }
    match env("HOME") {
        Some(home) => Ok(PathBuf::from(home).join(home_rel).join("stele")),
        None => {
            bail!("cannot choose a default directory: neither {var} nor HOME is set; pass {flag}")
        }
    }
}

/// An origin as one file-name component: every byte outside `[A-Za-z0-9._-]` becomes `_`,
/// and a leading dot too (no hidden files, no `..`).
pub fn sanitize_origin(origin: &str) -> String {
    let mut s: String = origin
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.starts_with('.') || s.is_empty() {
        s.insert(0, '_');
    }
    s
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use super::*;

    fn env_of<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn data_dir_prefers_flag_then_stele_data_then_xdg_then_home() {
        let all = [
            ("STELE_DATA", "/s"),
            ("XDG_DATA_HOME", "/x"),
            ("HOME", "/h"),
        ];
        assert_eq!(
            data_dir_from(Some(Path::new("/flag")), &env_of(&all)).unwrap(),
            PathBuf::from("/flag")
        );
        assert_eq!(
            data_dir_from(None, &env_of(&all)).unwrap(),
            PathBuf::from("/s")
        );
        assert_eq!(
            data_dir_from(None, &env_of(&all[1..])).unwrap(),
            PathBuf::from("/x/stele")
        );
        assert_eq!(
            data_dir_from(None, &env_of(&all[2..])).unwrap(),
            PathBuf::from("/h/.local/share/stele")
        );
        let err = data_dir_from(None, &env_of(&[])).unwrap_err().to_string();
        assert!(err.contains("--data"), "{err}");
    }

    #[test]
    fn origins_become_single_safe_file_names() {
        assert_eq!(sanitize_origin("example.com/log42"), "example.com_log42");
        assert_eq!(sanitize_origin("../../etc/passwd"), "_.._.._etc_passwd");
        assert_eq!(sanitize_origin("a b\u{e9}"), "a_b_");
        assert_eq!(sanitize_origin(""), "_");
    }
}
