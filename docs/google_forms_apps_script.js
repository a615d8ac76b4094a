/**
 * Leadline for Google Forms: sends every form response to Leadline as it is submitted.
 *
 * Google Forms has no webhook of its own, so this script, bound to the form, does the posting.
 * Install it once (details in docs/forms.md):
 *   1. Open the form → ⋮ (More) → Apps Script. Replace the editor's contents with this file.
 *   2. Fill in LEADLINE_URL and LEADLINE_TOKEN below (the [[sources]] entry's name and token).
 *   3. Choose the function `installTrigger` in the toolbar and press Run; allow the access asked for.
 *   4. Submit a test response and look for it in Leadline (`leadline contacts`).
 *
 * What it sends (Leadline's own contract, read by capture/providers/google_forms.py):
 *   POST <LEADLINE_URL>, Content-Type: application/json, X-Leadline-Token: <LEADLINE_TOKEN>
 *   {"source": "google_forms", "form_id": "...", "response_id": "...", "timestamp": "<ISO-8601>",
 *    "respondent_email": "", "answers": {"<question title>": "<answer>" or ["<answer>", ...]}}
 *
 * Name the questions so Leadline recognises them (Имя / Name, Телефон / Phone, Email,
 * Сообщение / Message), or list your titles under field_map in the source's config.
 * response_id is the response's own id, so a resend never makes a second touch.
 */

var LEADLINE_URL = 'https://hooks.example.com/hooks/gforms';  // <public_url>/hooks/<source name>
var LEADLINE_TOKEN = 'change-me';                              // the source's token
var ATTEMPTS = 3;                                              // Leadline answers 5xx only when it cannot store

/** Run once from the editor: makes sendToLeadline run on every submission of this form. */
function installTrigger() {
  var form = FormApp.getActiveForm();
  ScriptApp.getProjectTriggers().forEach(function (trigger) {
    if (trigger.getHandlerFunction() === 'sendToLeadline') {
      ScriptApp.deleteTrigger(trigger);  // running installTrigger twice must not send twice
    }
  });
  ScriptApp.newTrigger('sendToLeadline').forForm(form).onFormSubmit().create();
}

/** The installable onFormSubmit trigger's handler; e.response is the FormResponse just submitted. */
function sendToLeadline(e) {
  var response = e.response;
  var answers = {};
  response.getItemResponses().forEach(function (itemResponse) {
    answers[itemResponse.getItem().getTitle()] = itemResponse.getResponse();
  });
  var payload = {
    source: 'google_forms',
    form_id: e.source.getId(),
    response_id: response.getId(),
    timestamp: response.getTimestamp().toISOString(),
    respondent_email: respondentEmail(response),
    answers: answers
  };
  var options = {
    method: 'post',
    contentType: 'application/json',
    payload: JSON.stringify(payload),
    headers: {'X-Leadline-Token': LEADLINE_TOKEN},
    muteHttpExceptions: true
  };
  var status = 0;
  for (var attempt = 1; attempt <= ATTEMPTS; attempt++) {
    try {
      status = UrlFetchApp.fetch(LEADLINE_URL, options).getResponseCode();
    } catch (err) {
      status = 0;  // network error: worth another try
    }
    if (status < 500 && status !== 0 && status !== 429) {
      break;  // 200 stored; 4xx is a setup problem (token, URL, fields) that a retry will not fix
    }
    Utilities.sleep(2000 * attempt);
  }
  if (status !== 200) {
    // Shown under Executions in the Apps Script editor; the response stays in the form's Responses tab.
    throw new Error('Leadline answered ' + status + ' for response ' + response.getId());
  }
}

/** The respondent's address when the form collects it, else an empty string. */
function respondentEmail(response) {
  try {
    return response.getRespondentEmail() || '';
  } catch (err) {
    return '';
  }
}
