//! A project's outbound webhook (issue 26): the `webhook` and `webhook_events_filter` fields read
//! at create (JSON body or their multipart form) and changed by PATCH, checked as a job's are
//! (`crate::webhooks::target`), and the body each delivery carries. Which change tells of which
//! event, and the rows themselves, are the store's (`jobs::store::project_deliveries`): they are
//! written in the transaction of the change.

use serde_json::{Value, json};

use super::Project;
use super::answer::ProjectResponse;
use crate::error::ApiError;
use crate::jobs::store::deliveries::WebhookPolicy;
use crate::jobs::store::projects::{Bind, ProjectRow, SceneRow, Sets};
use crate::webhooks::target;

/// A delivery's body: the project as `GET /api/mv/projects/{id}` shows it.
pub fn webhook_body(row: &ProjectRow, scenes: &[SceneRow]) -> String {
    let project = Project { row: row.clone(), scenes: scenes.to_vec() };
    serde_json::to_string(&ProjectResponse::from(&project)).unwrap_or_else(|_| "null".to_owned())
}

/// A project's webhook columns (`webhook`, `webhook_events`): both `None` without one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Columns {
    pub webhook: Option<String>,
    pub webhook_events: Option<String>,
}

/// The webhook a create asked for, checked (an unreachable or private target, an unknown event:
/// a 400 naming the field, before anything is stored). A multipart form sends text: an empty
/// field is no field, and the filter may be a JSON list or words separated by commas or spaces.
pub async fn at_create(
    webhook: Option<Value>,
    filter: Option<Value>,
    policy: WebhookPolicy,
) -> Result<Columns, ApiError> {
    let (webhook, filter) = (form_text(webhook), form_list(filter)?);
    checked(webhook.as_ref(), filter.as_ref(), policy).await
}

/// The columns a PATCH sets, if it names either field: `webhook` replaces the URL (`null` removes
/// the webhook), `webhook_events_filter` the events; the one it leaves out stays as stored (a new
/// URL without a filter, on a project that had none, gets the default `["completed"]`).
pub async fn at_patch(
    stored: &ProjectRow,
    webhook: Option<Value>,
    filter: Option<Value>,
    policy: WebhookPolicy,
) -> Result<Option<Sets>, ApiError> {
    if webhook.is_none() && filter.is_none() {
        return Ok(None);
    }
    let webhook = webhook.unwrap_or_else(|| stored.webhook.clone().map_or(Value::Null, Value::String));
    let filter = match filter {
        Some(filter) => filter,
        // Kept only while there is a URL to send to: removing the webhook removes its filter.
        None if webhook.is_null() => Value::Null,
        None => stored
            .webhook_events
            .as_deref()
            .map_or(Value::Null, |words| json!(words.split(',').filter(|w| !w.is_empty()).collect::<Vec<_>>())),
    };
    let columns = checked(Some(&webhook), Some(&filter), policy).await?;
    Ok(Some(vec![("webhook", Bind::from(columns.webhook)), ("webhook_events", Bind::from(columns.webhook_events))]))
}

async fn checked(webhook: Option<&Value>, filter: Option<&Value>, policy: WebhookPolicy) -> Result<Columns, ApiError> {
    let Some(requested) = target::requested(webhook, filter)? else { return Ok(Columns::default()) };
    let target = target::check(requested, policy).await?;
    Ok(Columns { webhook: Some(target.url), webhook_events: Some(target.events.stored()) })
}

/// A form's text field: an empty one is as good as absent (their form sends every field).
fn form_text(value: Option<Value>) -> Option<Value> {
    match value {
        Some(Value::String(text)) if text.trim().is_empty() => None,
        other => other,
    }
}

/// `webhook_events_filter` as a list: a JSON body's list as it is; a form's text as a JSON list
/// (`["start","completed"]`) or words (`start,completed`, `start completed`).
fn form_list(value: Option<Value>) -> Result<Option<Value>, ApiError> {
    let Some(Value::String(text)) = form_text(value.clone()) else { return Ok(form_text(value)) };
    let text = text.trim();
    if text.starts_with('[') {
        return serde_json::from_str(text)
            .map(Some)
            .map_err(|e| ApiError::invalid("webhook_events_filter", format!("not a JSON list ({e})")));
    }
    let words: Vec<&str> = text.split([',', ' ']).filter(|w| !w.is_empty()).collect();
    Ok(Some(json!(words)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forms_filter_is_a_json_list_or_words() {
        let list = |text: &str| form_list(Some(json!(text))).expect(text);
        assert_eq!(list("start,completed"), Some(json!(["start", "completed"])));
        assert_eq!(list(" progress  completed "), Some(json!(["progress", "completed"])));
        assert_eq!(list("[\"start\"]"), Some(json!(["start"])));
        assert_eq!(list(""), None, "an empty field is no field");
        assert_eq!(form_list(Some(json!(["start"]))).expect("json"), Some(json!(["start"])));
        let e = form_list(Some(json!("[start"))).expect_err("broken JSON");
        assert!(e.message.contains("webhook_events_filter"), "{}", e.message);
    }
}
