# The gateway's pages in English, the language every other file is
# checked against (see docs/architecture.md, "UI languages").
# Arguments named in { $...} are given by the pages; $count-like numbers
# pick the plural form with the language's CLDR rules.

language-name = English
language-switch = Language
page-title = { $title } · Kolokol

## The shared layout

search-label = Search titles and summaries
search-placeholder = Search
search-button = Search
footer-served = Served by your own Kolokol node. Every story here was checked against its newsroom's key before it was stored.
footer-safety = Safety
footer-feed = Atom feed
footer-api = API

## Errors

error-title =
    { $status ->
        [400] Bad request
        [404] Not found
       *[other] Something went wrong
    }
error-home = Home
error-not-found = There is nothing at this address.
error-store = The store could not be read.
error-bad-query = This address asks for something the page cannot show: { $detail }
error-no-publisher = No trusted publisher has that name.
error-not-bundle-id = That is not a bundle id (64 hexadecimal digits).
error-no-story = This node holds no story with that id from a publisher you trust.
error-no-media = No such media file.
error-feed = The feed could not be written.

## Dates and durations

month-1 = January
month-2 = February
month-3 = March
month-4 = April
month-5 = May
month-6 = June
month-7 = July
month-8 = August
month-9 = September
month-10 = October
month-11 = November
month-12 = December
date = { $day } { $month } { $year }, { $time } UTC
duration-days =
    { $count ->
        [one] { $count } day
       *[other] { $count } days
    }
duration-hours =
    { $count ->
        [one] { $count } hour
       *[other] { $count } hours
    }
duration-minutes =
    { $count ->
        [one] { $count } minute
       *[other] { $count } minutes
    }
duration-seconds =
    { $count ->
        [one] { $count } second
       *[other] { $count } seconds
    }
duration-pair = { $first } { $second }
ago = { $duration } ago

## Kinds of bundle

kind-story = story
kind-correction = correction
kind-retraction = retraction
badge-retracted = Retracted
badge-corrected = Corrected

## Home

home-title = Home
home-heading = Your newsrooms
home-no-publishers = You trust no publisher yet. Add one with this command:
home-demo-warning = Demo newsroom: its secret key is public. Nothing it signs is real news.
home-last-heard = Last heard from { $ago } (sequence { $sequence }).
home-expired = Warning: the newest word from this newsroom expired { $ago }. Someone may be keeping its new stories from reaching you.
home-not-heard = Not heard from yet.
home-held =
    { $stories ->
        [one] { $stories } story
       *[other] { $stories } stories
    } held ({ $bundles ->
        [one] { $bundles } bundle
       *[other] { $bundles } bundles
    }).
home-missing-none = Nothing missing: this node holds everything this newsroom has announced.
home-missing =
    { $missing ->
        [one] { $missing } missing: one story, correction or retraction this newsroom has published has not reached this node yet.
       *[other] { $missing } missing: stories, corrections or retractions this newsroom has published have not reached this node yet.
    } The node fetches them as soon as a peer has them.
home-feed = Atom feed
home-latest = Latest stories
home-no-stories = No stories yet.

## Lists

pager-label = Pages
pager-newer = ← Newer
pager-older = Older →
pager-position = Page { $page } of { $pages }
facet-languages = Languages
facet-sections = Sections
facet-all = all
publisher-own-site = Own site (may be blocked where you are): { $address }
publisher-count =
    { $count ->
        [one] { $count } story.
       *[other] { $count } stories.
    }

## Search

search-title = Search
search-found =
    { $count ->
        [one] { $count } story matches { $query }.
       *[other] { $count } stories match { $query }.
    }
search-hint = Type words to find in the titles and summaries of stories.

## A story

story-retracted = Retracted.
story-retracted-notice = The newsroom withdrew this story on { $date }. Its notice is shown instead of the story.
story-old-version = You are reading version { $version } of this story.
story-current-version = Read the current version ({ $version }, { $kind })
story-corrected = { $corrected } on { $date }.
story-corrected-word = Corrected
story-corrects = See the version it corrects
story-updated = updated { $date }

## The verification panel

verify-heading = Verification
verify-ok = Verified: the signature, the signing key's certificate and every file's hash were checked before this node stored the story.
verify-publisher = Publisher
verify-demo = Demo newsroom: its secret key is public, so anyone can sign as it.
verify-root = Publisher's root key
verify-signing-key = Signing key
verify-certificate = Key certificate
verify-certificate-validity = serial { $serial }, valid from { $from } to { $to }
verify-signed = Signed
verify-bundle = Bundle id
verify-sequence = Sequence
verify-version = Version
verify-version-kind = { $version } ({ $kind })
verify-original = Original address
verify-versions = Versions
verify-version-n = Version { $version }
verify-signed-on = signed { $date }
verify-opened = the version you opened

## Safety

safety-title = Safety
safety-quiet-strong = This node is a quiet reader.
safety-quiet = It listens only on this machine, answers no peer and shares nothing.
safety-share-strong = This node shares (--share).
safety-share = Peers that reach it can learn which publishers it carries and which stories it holds.
safety-mirror-strong = This node is a mirror.
safety-mirror = It serves, relays and announces in the DHT the publishers it carries.
safety-device-heading = What is on this device
safety-device = Everything in the node's data directory: the stories, photos and corrections of the publishers you trust, your trust list, and the node's settings. They are stored in the clear. Anyone who holds this device, or a copy of its disk, can read every story it stored.
safety-who-heading = Who can see what
safety-mirrors-strong = The mirrors your node connects to
safety-mirrors = see your IP address, when you are online and how much you fetch. They see that you follow the whole log of what they carry, not which outlets among them you read, except when your node fetches a story too large to come with the others (over 32 KiB, with photos): that fetch tells the mirror you wanted that story. Setting large_story_budget_bytes_per_day to 0 in the node's settings stops those fetches.
safety-peers-strong = Other peers
safety-peers = can reach a quiet reader not at all: it listens only on this machine, answers no request, takes a new peer id at every start and names no outlet in what it asks. A node started with --share answers them: they can learn which stories it holds and which publishers it carries, under a peer id that stays.
safety-watch-strong = Someone watching your connection
safety-watch = sees that you connect to a Kolokol mirror, and when; the content is encrypted.
safety-page-strong = This page
safety-page = is served by your own node, on this machine only unless it was started with --gateway-public.
safety-language-strong = Your choice of language
safety-language = stays in this browser: a cookie that ends with the browser session, sent to this node only.
safety-wipe-heading = How to wipe it
safety-wipe = Stop the node (Ctrl-C, or stop its service), then delete its data directory (by default { $default }, or the folder given with { $flag }). That removes every story, the trust list and the settings.

## The lock page of a sealed node

lock-title = Locked
lock-text = This node keeps its data encrypted. Type the passphrase to unlock it.
lock-passphrase = Passphrase
lock-unlock = Unlock
lock-served = Served by your own Kolokol node.
lock-refused = Refused: the passphrase is taken only from this node's own page.
lock-busy = Another attempt is under way: try again in a moment.
lock-too-large = The form is too large.
lock-stopping = The node is stopping.
lock-wrong = Wrong passphrase.
lock-failed = The node could not start: { $why }

## The "Add a newsroom" page

add-link = Add a newsroom
add-title = Add a newsroom
add-intro = Paste the text a newsroom gave you (it starts with kolokol-publisher:), or the contents of its publisher file. You will see its name and fingerprint before anything is added.
add-label = Publisher text or file
add-file-label = Or choose its publisher file
add-url-label = Or give the address (URL) where the newsroom publishes it
add-url-failed = Fetching it failed
add-preview = Check it
add-check-heading = Is this the newsroom you meant?
add-check-intro = Compare the fingerprint with the one the newsroom gives you through another channel (read aloud, on its site, on paper). Anyone can make a file with any name; only the fingerprint tells them apart.
add-name = Name
add-fingerprint = Fingerprint
add-root-key = Root key
add-homepage = Site
add-mirrors = Mirrors
add-no-mirrors = none: the node finds its stories only through peers it already knows
add-demo = This is the demo newsroom: its secret key is public, so anyone can sign as it. Never trust it for real news.
add-confirm = Add this newsroom
add-cancel = Cancel
add-added-heading = Added
add-added = The node trusts it now and dials its mirrors; its stories appear on the home page as they arrive.
add-home = Home
add-not-text = This is not a publisher text or file
add-not-file = This is not a valid publisher file
add-failed = The node did not add it
add-timeout = the node did not answer in time
add-no-desk = This gateway does not run inside a node, so it cannot add newsrooms. Use kolokol trust add on the command line.
add-wrong-origin = This form is taken only from this gateway's own page. Open the Add a newsroom page of your node and try again.
