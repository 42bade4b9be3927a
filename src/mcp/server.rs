//! The MCP server object and its stdio entry point.
//!
//! `ImagenServer` is cheap to clone (an `Engine` clone, an `Arc` of the defaults and the tool
//! router), because rmcp hands every request to its own task: concurrent tool calls therefore
//! share one `Engine`, and with it the engine's single auth refresh. The tool handlers live
//! in `tools.rs` and the stdio framing in `transport.rs`; this file only wires them into rmcp
//! and owns the process-level settings.

use std::sync::Arc;
use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::{tool_handler, ServerHandler, ServiceExt};

use crate::engine::shared::Engine;
use crate::foundation::error::{Error, Result};
use crate::foundation::job::JobSpec;
use crate::frontend::report;

/// Longest gap between two progress notifications while a job waits.
pub(crate) const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(5);

/// The command line's defaults, applied to every tool call that does not override them.
#[derive(Clone, Debug)]
pub(crate) struct McpDefaults {
    /// The job the command line describes, without a prompt: output directory (the CLI's
    /// chain), base directory (`--cwd`), backend, model, retries, per-attempt timeout,
    /// streaming and image detail. Each call starts from a copy of it.
    pub(crate) job: JobSpec,
    /// No stderr diagnostics but warnings and fatal errors, not even the start-up line.
    pub(crate) quiet: bool,
    /// Stage changes, retries and the end of each call on stderr.
    pub(crate) verbose: bool,
    pub(crate) heartbeat: Duration,
}

#[derive(Clone)]
pub(crate) struct ImagenServer {
    pub(super) engine: Engine,
    pub(super) defaults: Arc<McpDefaults>,
    tool_router: ToolRouter<Self>,
}

impl ImagenServer {
    pub(crate) fn new(engine: Engine, defaults: McpDefaults) -> Self {
        Self {
            engine,
            defaults: Arc::new(defaults),
            tool_router: Self::tool_router(),
        }
    }

    /// stderr only: stdout carries the protocol.
    pub(super) fn diag(&self, message: impl std::fmt::Display) {
        if self.defaults.verbose && !self.defaults.quiet {
            report::eprint_line(&format!("codex-imagen: mcp: {message}"));
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for ImagenServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "codex-imagen",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "Generate and edit images with gpt-image through the user's ChatGPT \
                 subscription. Images are saved to disk; each result gives the absolute path. \
                 A generation takes 30 s to several minutes.",
            )
    }
}

/// Serves MCP on stdin/stdout until the client closes the connection.
pub(crate) async fn serve_stdio(engine: Engine, defaults: McpDefaults) -> Result<()> {
    let quiet = defaults.quiet;
    let server = ImagenServer::new(engine, defaults);
    if !quiet {
        report::eprint_line(&format!(
            "codex-imagen {}: MCP server on stdio",
            env!("CARGO_PKG_VERSION")
        ));
    }
    let running = server
        .serve(super::transport::LineTransport::stdio())
        .await
        .map_err(|e| Error::Io(format!("MCP initialisation failed: {e}")))?;
    running
        .waiting()
        .await
        .map_err(|e| Error::Io(format!("MCP server stopped: {e}")))?;
    Ok(())
}
