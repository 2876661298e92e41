//! Debian's nginx for tests: a configuration that keeps all its files in
//! a folder of the test's, around one `server` block of the test's own.

use std::path::Path;

/// A whole nginx configuration, its pid, logs and temporary folders in
/// `dir`, serving `server` (the inside of one `server { }` block).
pub fn conf(dir: &Path, server: &str) -> String {
    let d = dir.display();
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
{server}
    }}
}}
"#
    )
}

/// The `location` blocks that serve a web tree in `root` at `/tree/` as
/// docs/censorship.md sets them up: immutable files cached for ever, the
/// index never.
pub fn tree_locations(root: &Path) -> String {
    let root = root.display();
    format!(
        r#"        location /tree/ {{
            alias {root}/;
            default_type application/octet-stream;
            add_header Cache-Control "public, max-age=31536000, immutable";
        }}
        location = /tree/index.kolokol {{
            alias {root}/index.kolokol;
            default_type application/octet-stream;
            add_header Cache-Control "no-cache";
        }}"#
    )
}
