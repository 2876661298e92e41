//! What a node tells its reader on first start: what it reveals, and
//! what it keeps on disk. Said once per role and data directory; the
//! gateway's Safety page says the same at any time.

use std::path::Path;

use crate::sync::Role;

/// The file, in the data directory, that lists the roles already told
/// about (one name a line).
const TOLD_FILE: &str = "told.txt";

/// Largest told file read: three short names.
const MAX_TOLD_FILE: u64 = 1024;

/// The role's name, as `kolokol status` prints it.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Quiet => "quiet reader",
        Role::Share => "sharing reader",
        Role::Mirror => "mirror",
    }
}

/// What a node of `role` reveals and keeps, in a few plain lines.
pub fn note(role: Role) -> &'static str {
    match role {
        Role::Quiet => {
            "This node is a quiet reader. It listens only on this machine, \
             answers no peer's request and shares nothing; the mirrors it \
             connects to see your IP address and when you are online, not \
             which outlets you read (a story over 32 KiB, fetched on its own, \
             does tell the mirror you wanted it; see \
             large_story_budget_bytes_per_day). It takes a new peer id at \
             every start.\n\
             It keeps the stories of the publishers you trust in this data \
             directory: anyone holding this device can read them. To remove \
             them, stop the node and delete the data directory.\n\
             To serve friends (on a LAN when the border is cut), run with \
             --share: they then learn what this node holds and which \
             publishers it carries."
        }
        Role::Share => {
            "This node is a sharing reader. It listens on every interface and \
             serves what it holds: any peer that reaches it can learn which \
             publishers it carries and which stories it holds, and its peer id \
             (in node.key) stays the same across starts.\n\
             It keeps the stories of the publishers you trust in this data \
             directory: anyone holding this device can read them. To remove \
             them, stop the node and delete the data directory.\n\
             Without --share the node is a quiet reader, which serves nothing."
        }
        Role::Mirror => {
            "This node is a mirror. It listens on every interface, serves and \
             relays for anyone, answers the DHT and announces there which \
             publishers it carries; its peer id (in node.key) stays the same \
             across starts. Readers' IP addresses and online times reach it.\n\
             It keeps the stories of every publisher it carries in this data \
             directory. To remove them, stop the node and delete the data \
             directory."
        }
    }
}

/// The note for `role`, if this data directory was not yet told it; marks
/// it told. A mark that cannot be written only means the note comes again.
pub fn first_start(data_dir: &Path, role: Role) -> Option<&'static str> {
    let path = data_dir.join(TOLD_FILE);
    let told = crate::files::read_bounded_text(&path, MAX_TOLD_FILE).unwrap_or_default();
    let name = role_name(role);
    if told.lines().any(|l| l.trim() == name) {
        return None;
    }
    let mut text = told;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(name);
    text.push('\n');
    if let Err(e) = crate::files::write_private(&path, text.as_bytes()) {
        tracing::debug!("cannot mark the first-start note as told: {e}");
    }
    Some(note(role))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_is_told_once_per_data_directory() {
        let dir = tempfile::TempDir::new().unwrap();
        let quiet = first_start(dir.path(), Role::Quiet).unwrap();
        assert!(quiet.contains("quiet reader"));
        assert!(quiet.contains("delete the data directory"));
        assert_eq!(first_start(dir.path(), Role::Quiet), None);
        let share = first_start(dir.path(), Role::Share).unwrap();
        assert!(share.contains("which stories it holds"));
        assert_eq!(first_start(dir.path(), Role::Share), None);
        assert_eq!(first_start(dir.path(), Role::Quiet), None);
    }
}
