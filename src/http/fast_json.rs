//! `FastJson`: a JSON response payload that serializes with serde straight to bytes.
//!
//! poem-openapi's `Json` goes through `ToJSON`, building a `serde_json::Value` tree (a String
//! and a map node per field) before writing it out; on a page of pushes that tree dominated the
//! cost of the request. The spec side still comes from `T: Type`, so the OpenAPI document is the
//! same as with `Json<T>`; `T`'s serde names must match its `Object` names.

use poem::http::{HeaderValue, header};
use poem::{IntoResponse, Response};
use poem_openapi::ApiResponse;
use poem_openapi::payload::Payload;
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, MetaSchemaRef, Registry};
use poem_openapi::types::Type;
use serde::Serialize;

use crate::error_code::ErrorCode;

const CONTENT_TYPE: &str = "application/json; charset=utf-8";

pub struct FastJson<T>(pub T);

impl<T: Type> Payload for FastJson<T> {
    const CONTENT_TYPE: &'static str = CONTENT_TYPE;

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Serialize + Send> IntoResponse for FastJson<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(body) => Response::builder()
                .header(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))
                .body(body),
            // Only a map with non-string keys or a failing custom Serialize can get here; the
            // response types have neither, but a bug must still answer in the JSON error shape.
            Err(e) => {
                tracing::error!(error = %e, "response serialization failed");
                let code = ErrorCode::InternalError;
                code.response(code.default_message())
            }
        }
    }
}

impl<T: Type + Serialize + Send> ApiResponse for FastJson<T> {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "",
                status: Some(200),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: <Self as Payload>::CONTENT_TYPE,
                    schema: <Self as Payload>::schema_ref(),
                }],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}
