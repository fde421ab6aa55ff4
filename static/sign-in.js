// The signed-out page at /: off to sign in at once, returning to the whole address, fragment (the room)
// included, which the server cannot see and so cannot put in its own link.

const back = `${location.pathname}${location.search}${location.hash}`;
location.replace(`/login?return_to=${encodeURIComponent(back)}`);
