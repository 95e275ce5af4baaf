//! The error responses of the API document. Every error is `{"error": "<what to fix>"}`
//! (`ErrorBody`), with a few extra fields where noted; each kind below is one reusable response
//! that the routes' annotations name by status.

use utoipa::ToResponse;
use utoipa::openapi::schema::Ref;
use utoipa::openapi::{Content, RefOr, Response, ResponseBuilder};

/// An error response: `description`, and an `ErrorBody` as JSON.
fn error(description: &str) -> RefOr<Response> {
    let body = Content::new(Some(Ref::from_schema_name("ErrorBody")));
    ResponseBuilder::new().description(description).content("application/json", body).build().into()
}

/// Declares a reusable error response: the type names it in annotations, its name is its key
/// under `components.responses`.
macro_rules! error_response {
    ($name:ident, $description:literal) => {
        #[doc = $description]
        #[derive(Debug)]
        pub(crate) enum $name {}

        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                (stringify!($name), error($description))
            }
        }
    };
}

error_response!(
    BadRequest,
    "The request is malformed (its body, a query parameter or an id); `error` says what to fix. \
     A bad query parameter also comes with `details`: `[{\"code\": \"custom\", \"message\": …, \"path\": [<parameter>]}]`."
);
error_response!(
    Unauthorized,
    "No credential, one that is not valid here, or a public access token where a secret key is needed \
     (on the callback route: a hash that does not match, or a delivery whose signature does not verify \
     against the token's `callbackVerifier`)."
);
error_response!(
    Forbidden,
    "A public access token of another token: `code` is `unauthorized`, with `param: \"access_token\"` and \
     `type: \"authorization\"`."
);
error_response!(NotFound, "No such token or run in the credential's environment.");
error_response!(
    Conflict,
    "The call is about a state that has moved on; `code` says which: `run_moved_on` (the run is no longer \
     this worker's at this epoch: drop it), `journal_mismatch` (another entry is recorded at this position, \
     or the position is not the next one), or `worker_replaced` (a newer process took this worker id over); \
     for a heartbeat or an extend, the token finished, or its time came before the request arrived."
);
error_response!(LengthRequired, "The request has no `Content-Length` header.");
error_response!(
    PayloadTooLarge,
    "The body is larger than the route's limit: 10 KiB for a create, 64 KiB for worker protocol calls, \
     3 MiB for outputs, payloads and journal entries."
);
error_response!(Unprocessable, "More than 10 tags, or an output that does not fit the token's `outputSchema`.");
error_response!(
    ServerError,
    "500: the storage failed (`Internal Server Error`); 503: the server is shutting down, retry."
);
