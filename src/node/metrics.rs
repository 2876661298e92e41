//! The operator's endpoints, on their own address: `/metrics` in the
//! Prometheus text format and `/healthz`.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::net::Network;

/// How long `/healthz` waits for the node to answer.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

async fn metrics(State(node): State<Network>) -> Response {
    match tokio::time::timeout(HEALTH_TIMEOUT, node.metrics()).await {
        Ok(Ok(text)) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the node does not answer\n",
        )
            .into_response(),
    }
}

/// 200 while the node's actor answers within [`HEALTH_TIMEOUT`], with its
/// peer count; 503 otherwise.
async fn healthz(State(node): State<Network>) -> Response {
    match tokio::time::timeout(HEALTH_TIMEOUT, node.status()).await {
        Ok(Ok(st)) => axum::Json(serde_json::json!({
            "status": "ok",
            "peers": st.peers.len(),
            "fetching": st.fetching,
        }))
        .into_response(),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({ "status": "unavailable" })),
        )
            .into_response(),
    }
}

/// The router of the operator's endpoints.
pub(crate) fn router(node: Network) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(node)
}
