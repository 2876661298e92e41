//! A process's sockets, read from /proc.

use std::collections::HashSet;

/// The inodes of the sockets process `pid` holds open.
pub fn socket_inodes(pid: u32) -> HashSet<u64> {
    let mut inodes = HashSet::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        if let Ok(target) = std::fs::read_link(entry.path()) {
            let t = target.to_string_lossy();
            if let Some(n) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                inodes.insert(n.parse().unwrap());
            }
        }
    }
    inodes
}

/// A local address of /proc/net/{tcp,udp}[6] as an IP address.
pub fn local_ip(hex: &str) -> std::net::IpAddr {
    let (ip, _port) = hex.split_once(':').unwrap();
    if ip.len() == 8 {
        let n = u32::from_str_radix(ip, 16).unwrap();
        // The kernel prints the address in host order (little-endian here).
        std::net::IpAddr::V4(std::net::Ipv4Addr::from(n.swap_bytes()))
    } else {
        let mut bytes = [0u8; 16];
        for (i, word) in ip.as_bytes().chunks(8).enumerate() {
            let w = u32::from_str_radix(std::str::from_utf8(word).unwrap(), 16).unwrap();
            bytes[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
        }
        std::net::IpAddr::V6(std::net::Ipv6Addr::from(bytes))
    }
}

/// The local addresses of the sockets of `pid` that take traffic from
/// anyone: listening TCP sockets, and UDP sockets that are bound but not
/// connected. Each as (table, address).
pub fn open_sockets(pid: u32) -> Vec<(String, String, std::net::IpAddr)> {
    let inodes = socket_inodes(pid);
    let mut open = Vec::new();
    for table in ["tcp", "tcp6", "udp", "udp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/net/{table}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (local, state, inode) = (f[1], f[3], f[9].parse::<u64>().unwrap());
            // 0A: TCP_LISTEN; 07: TCP_CLOSE, which UDP shows for a socket
            // that is not connected.
            let takes_anyone = if table.starts_with("tcp") {
                state == "0A"
            } else {
                state == "07"
            };
            if inodes.contains(&inode) && takes_anyone {
                open.push((table.to_owned(), local.to_owned(), local_ip(local)));
            }
        }
    }
    open
}

/// The remote addresses of the established TCP connections of `pid`.
pub fn connected_to(pid: u32) -> Vec<std::net::SocketAddr> {
    let inodes = socket_inodes(pid);
    let mut out = Vec::new();
    for table in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/net/{table}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (remote, state, inode) = (f[2], f[3], f[9].parse::<u64>().unwrap());
            // 01: TCP_ESTABLISHED.
            if inodes.contains(&inode) && state == "01" {
                let port = u16::from_str_radix(remote.split_once(':').unwrap().1, 16).unwrap();
                out.push(std::net::SocketAddr::new(local_ip(remote), port));
            }
        }
    }
    out
}
