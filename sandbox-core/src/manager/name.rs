//! Validation of the names the manager turns into paths: sandbox, module and
//! snapshot names. Each becomes one directory or file name under the state
//! directory, so the accepted forms exclude `/`, `.`, `..`, hidden names and
//! anything a shell or a file system would treat specially.

use super::error::{ManagerError, Result};

/// What sandbox and snapshot names accept.
pub const SANDBOX_NAME_RULE: &str =
    "use 1-63 characters from a-z, 0-9, '_' and '-', starting with a letter or digit";

/// What module names accept.
pub const MODULE_NAME_RULE: &str =
    "use 1-128 characters from A-Z, a-z, 0-9, '.', '_' and '-', starting with a letter or digit";

/// Checks a sandbox name: `[a-z0-9][a-z0-9_-]{0,62}`.
pub fn validate_sandbox_name(name: &str) -> Result<()> {
    check(name, "sandbox", SANDBOX_NAME_RULE, 63, |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'
    })
}

/// Checks a snapshot name (the same form as a sandbox name).
pub fn validate_snapshot_name(name: &str) -> Result<()> {
    check(name, "snapshot", SANDBOX_NAME_RULE, 63, |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'
    })
}

/// Checks a module name: `[A-Za-z0-9][A-Za-z0-9._-]{0,127}`, so that `app.py`
/// or `plugin.wasm` can be used as they are and name the file in the code directory.
pub fn validate_module_name(name: &str) -> Result<()> {
    check(name, "module", MODULE_NAME_RULE, 128, |c| {
        c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-'
    })
}

fn check(
    name: &str,
    what: &'static str,
    accepted: &'static str,
    max: usize,
    allowed: impl Fn(char) -> bool,
) -> Result<()> {
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() && allowed(c));
    if first_ok && name.len() <= max && name.chars().all(allowed) {
        Ok(())
    } else {
        Err(ManagerError::InvalidName {
            what,
            name: name.to_string(),
            accepted,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_names_accept_lowercase_digits_dash_underscore() {
        for ok in ["a", "my-sandbox", "exercise_42", "0", &"a".repeat(63)] {
            assert!(validate_sandbox_name(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn sandbox_names_refuse_paths_hidden_uppercase_and_long_names() {
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "-x",
            "_x",
            ".hidden",
            "Upper",
            "sp ace",
            "é",
            &"a".repeat(64),
        ] {
            assert!(validate_sandbox_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn module_names_may_carry_an_extension_but_never_a_path() {
        assert!(validate_module_name("app.py").is_ok());
        assert!(validate_module_name("Plugin-1.wasm").is_ok());
        for bad in ["", ".", "..", ".app", "a/b", "a\\b", "a b"] {
            assert!(validate_module_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_error_says_what_is_accepted() {
        let err = validate_sandbox_name("Bad/Name").unwrap_err().to_string();
        assert!(err.contains("\"Bad/Name\""), "{err}");
        assert!(err.contains("a-z, 0-9"), "{err}");
    }
}
