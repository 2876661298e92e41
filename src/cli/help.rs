//! The examples each main command's long help (`--help`) ends with.

/// `kolokol node`.
pub(super) const NODE: &str = "Examples:
  # A reader on this machine: gateway on http://127.0.0.1:8080/
  kolokol node
  # A mirror on a server, with metrics for Prometheus
  kolokol node --mirror --no-gateway --metrics 127.0.0.1:9464
  # A reader whose peers are reached through Tor
  kolokol node --proxy socks5h://127.0.0.1:9050";

/// `kolokol status`.
pub(super) const STATUS: &str = "Examples:
  kolokol status
  # For scripts and monitoring (docs/cli-json.md)
  kolokol status --json
  # The node of another data directory
  kolokol --data-dir /var/lib/kolokol status";

/// `kolokol trust add`.
pub(super) const TRUST_ADD: &str = "Examples:
  kolokol trust add keys/example-news.toml
  # The one-line text a newsroom shares (quote it)
  kolokol trust add 'kolokol-publisher:...'
  kolokol trust add https://example.org/kolokol.toml
  # Show what the file says, and add nothing
  kolokol trust add --dry-run example-news.toml";

/// `kolokol trust list`.
pub(super) const TRUST_LIST: &str = "Examples:
  kolokol trust list
  kolokol trust list --json";

/// `kolokol newsroom init`.
pub(super) const NEWSROOM_INIT: &str = "Examples:
  kolokol newsroom init --name example-news --display-name 'Example News'
  # Keys encrypted under a passphrase, a mirror in the publisher file
  kolokol newsroom init --name example-news --encrypt \\
      --mirror /ip4/203.0.113.5/tcp/4001/p2p/12D3KooW...";

/// `kolokol publish`.
pub(super) const PUBLISH: &str = "Examples:
  kolokol publish story.md
  kolokol publish story.md --title 'Headline' --lang en --image photo.jpg
  # Every new item of an RSS or Atom feed
  kolokol publish --feed https://example.org/feed.xml";

/// `kolokol newsroom share`.
pub(super) const NEWSROOM_SHARE: &str = "Examples:
  kolokol newsroom share
  # Also a QR code to show on screen or print
  kolokol newsroom share --qr share.png";

/// `kolokol import`.
pub(super) const IMPORT: &str = "Examples:
  kolokol import stories.kolokol
  kolokol import usb/*.kolokol --json";

/// `kolokol export`.
pub(super) const EXPORT: &str = "Examples:
  kolokol export --out stories.kolokol
  # One newsroom, last week, leaving out what the other machine holds
  kolokol export --publisher example-news --since 2026-05-01 \\
      --have their-summary.toml --out for-them.kolokol
  # A web tree for a static host or CDN
  kolokol export --web /srv/www/kolokol";

/// `kolokol verify`.
pub(super) const VERIFY: &str = "Examples:
  kolokol verify story.kolokol
  kolokol verify *.kolokol --revocation revocation.bin
  kolokol verify story.kolokol --json";

/// `kolokol inspect`.
pub(super) const INSPECT: &str = "Examples:
  kolokol inspect story.kolokol
  kolokol inspect archive.kolokol --json";

/// `kolokol store stats`.
pub(super) const STORE_STATS: &str = "Examples:
  kolokol store stats
  kolokol store stats --json";

/// `kolokol store check`.
pub(super) const STORE_CHECK: &str = "Examples:
  kolokol store check
  # Remove what is damaged; peers supply it again
  kolokol store check --repair";

/// `kolokol peer add`.
pub(super) const PEER_ADD: &str = "Examples:
  kolokol peer add /ip4/203.0.113.5/tcp/4001/p2p/12D3KooW...
  kolokol peer add /dns4/mirror.example.org/tcp/443/wss/p2p/12D3KooW...";

/// `kolokol seal`.
pub(super) const SEAL: &str = "Examples:
  # Asks for a new passphrase twice
  kolokol seal
  # The passphrase from the environment, for scripts
  KOLOKOL_PASSPHRASE='...' kolokol seal";

/// `kolokol wipe`.
pub(super) const WIPE: &str = "Examples:
  # Asks for confirmation first
  kolokol wipe
  kolokol --data-dir /media/usb/kolokol wipe --yes";

/// `kolokol demo`.
pub(super) const DEMO: &str = "Examples:
  kolokol demo
  # Keep the demo's newsroom and nodes in a folder of your choice
  kolokol demo --dir /tmp/kolokol-demo";
