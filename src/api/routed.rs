//! A router together with the path templates routed in it.
//!
//! Request metrics are labelled by the matched route template. Read from axum's `MatchedPath`, the
//! metrics layer had to sit inside the router (`Router::layer`), which wraps every route in one
//! more boxed level that axum clones per request (BENCHMARKS.md, issue 22). Knowing every template,
//! the server matches a request's path itself outside the router, with the matcher axum uses
//! (`telemetry::RouteNames`). The list is recorded where each route is added, so it cannot miss one.

use axum::Router;
use axum::routing::MethodRouter;

/// `router` and every template passed to its `route` calls, merged ones included.
pub struct Routed<S = ()> {
    pub router: Router<S>,
    pub templates: Vec<&'static str>,
}

impl<S: Clone + Send + Sync + 'static> Routed<S> {
    pub fn new() -> Self {
        Routed { router: Router::new(), templates: Vec::new() }
    }

    /// `Router::route`, remembering the template.
    pub fn route(mut self, path: &'static str, method_router: MethodRouter<S>) -> Self {
        self.templates.push(path);
        self.router = self.router.route(path, method_router);
        self
    }

    /// `Router::merge`, with the other router's templates.
    pub fn merge(mut self, other: Routed<S>) -> Self {
        self.templates.extend(other.templates);
        self.router = self.router.merge(other.router);
        self
    }

    /// Anything else done to the router (a layer, its state), keeping the templates.
    pub fn map<T>(self, f: impl FnOnce(Router<S>) -> Router<T>) -> Routed<T> {
        Routed { router: f(self.router), templates: self.templates }
    }
}

impl<S: Clone + Send + Sync + 'static> Default for Routed<S> {
    fn default() -> Self {
        Self::new()
    }
}
