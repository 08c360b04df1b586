// What the page tells people when something goes wrong: plain words, and
// what to do next.

// joinError explains a refused ticket request.
export function joinError(status, serverMessage, guest) {
  switch (status) {
    case 401:
      return guest
        ? 'That conference key is not right for this meeting. Check the key in your invitation (or open its link again) and try once more.'
        : 'That user name or password is not right. Sign in with your user name (such as bob or bob@example.com) and your password, and try again.';
    case 403:
      return /another meeting/.test(serverMessage)
        ? 'That conference key is for another meeting. Open the link of the meeting it came with, or ask the organizer for this one\'s key.'
        : `You may not join this meeting (${serverMessage}). Ask the organizer to invite you.`;
    case 404:
      return 'This meeting does not exist any more: it has ended or was cancelled. Ask the organizer for a new link.';
    case 429:
    case 503:
      return 'The server is busy. Wait a minute and try again.';
  }
  return `The server could not let you in (${serverMessage || status}). Try again in a moment; if it goes on, tell the organizer.`;
}

// mediaError explains why the camera or microphone could not be used.
export function mediaError(err) {
  switch (err && err.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return 'The browser refused the camera and microphone. Allow them for this site (the icon in the address bar), then reload the page. You can still join to watch and listen.';
    case 'NotFoundError':
    case 'OverconstrainedError':
      return 'No camera or microphone was found. Plug one in and reload the page, or join to watch and listen.';
    case 'NotReadableError':
      return 'The camera or microphone is in use by another program. Close it and reload the page, or join to watch and listen.';
  }
  return `The camera and microphone could not be started (${err && err.message}). You can still join to watch and listen.`;
}

// endedReason explains why we are out of the meeting.
export function endedReason(reason) {
  const r = reason || '';
  if (r === 'you left') return 'You left the meeting.';
  if (r === 'rejected') return 'A presenter did not let you in. If you think this is a mistake, contact the organizer.';
  if (r === 'lobby timeout') return 'Nobody let you in from the lobby in time. Join again to wait once more, or contact the organizer.';
  if (r === 'ejected') return 'A presenter removed you from the meeting.';
  if (r === "meeting ended" || r === "no such meeting") return 'This meeting has ended or does not exist. Ask the organizer for a new link.';
  if (r.startsWith('refused')) return `The meeting did not let you in: ${r.replace(/^refused:\s*/, '')}. Contact the organizer.`;
  if (r === 'server closing') return 'The server is restarting. Join again in a minute.';
  if (r === 'media ended') return 'The audio and video connection ended. Join again.';
  return `The connection to the meeting was lost${r && r !== 'disconnected' ? ` (${r})` : ''}. Check your network and join again.`;
}
