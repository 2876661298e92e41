# صفحه‌های دروازه به فارسی. همان شناسه‌های en/gateway.ftl.

language-name = فارسی
language-switch = زبان
page-title = { $title } · Kolokol

## چیدمان مشترک

search-label = جست‌وجو در عنوان‌ها و خلاصه‌ها
search-placeholder = جست‌وجو
search-button = بجو
footer-served = این صفحه‌ها را گره Kolokol خودتان ارائه می‌کند. هر خبری که اینجاست، پیش از ذخیره با کلید رسانه‌اش بررسی شده است.
footer-safety = ایمنی
footer-feed = خوراک Atom
footer-api = API

## خطاها

error-title =
    { $status ->
        [400] درخواست نادرست
        [404] پیدا نشد
       *[other] مشکلی پیش آمد
    }
error-home = صفحهٔ اصلی
error-not-found = در این نشانی چیزی نیست.
error-store = خواندن انبارهٔ داده ممکن نشد.
error-bad-query = این نشانی چیزی می‌خواهد که این صفحه نمی‌تواند نشان دهد: { $detail }
error-no-publisher = هیچ ناشر مورد اعتمادی با این نام نیست.
error-not-bundle-id = این شناسهٔ بسته نیست (64 رقم شانزده‌شانزدهی).
error-no-story = این گره هیچ خبری با این شناسه از ناشری که به آن اعتماد دارید ندارد.
error-no-media = چنین فایل رسانه‌ای وجود ندارد.
error-feed = نوشتن خوراک ممکن نشد.

## تاریخ‌ها و مدت‌ها

month-1 = ژانویه
month-2 = فوریه
month-3 = مارس
month-4 = آوریل
month-5 = مه
month-6 = ژوئن
month-7 = ژوئیه
month-8 = اوت
month-9 = سپتامبر
month-10 = اکتبر
month-11 = نوامبر
month-12 = دسامبر
date = { $day } { $month } { $year }، ساعت { $time } UTC
# پس از عدد، اسم مفرد می‌آید.
duration-days =
    { $count ->
        [one] { $count } روز
       *[other] { $count } روز
    }
duration-hours =
    { $count ->
        [one] { $count } ساعت
       *[other] { $count } ساعت
    }
duration-minutes =
    { $count ->
        [one] { $count } دقیقه
       *[other] { $count } دقیقه
    }
duration-seconds =
    { $count ->
        [one] { $count } ثانیه
       *[other] { $count } ثانیه
    }
duration-pair = { $first } و { $second }
ago = { $duration } پیش

## گونه‌های بسته

kind-story = خبر
kind-correction = اصلاحیه
kind-retraction = پس‌گیری
badge-retracted = پس‌گرفته‌شده
badge-corrected = اصلاح‌شده

## خانه

home-title = خانه
home-heading = رسانه‌های شما
home-no-publishers = هنوز به هیچ ناشری اعتماد نکرده‌اید. با این فرمان یکی اضافه کنید:
home-demo-warning = رسانهٔ نمایشی: کلید مخفی آن عمومی است. هیچ‌چیزِ امضاشده با آن خبر واقعی نیست.
home-last-heard = آخرین نشانه از این رسانه: { $ago } (شمارهٔ ترتیب { $sequence }).
home-expired = هشدار: اعتبار تازه‌ترین نشانهٔ این رسانه { $ago } به پایان رسیده است. شاید کسی نمی‌گذارد خبرهای تازه‌اش به شما برسد.
home-not-heard = هنوز نشانه‌ای از آن نرسیده است.
home-held =
    { $stories ->
        [one] { $stories } خبر
       *[other] { $stories } خبر
    } نگه داشته شده ({ $bundles ->
        [one] { $bundles } بسته
       *[other] { $bundles } بسته
    }).
home-missing-none = چیزی کم نیست: این گره همهٔ آنچه این رسانه اعلام کرده است را دارد.
home-missing =
    { $missing ->
        [one] { $missing } مورد کم است
       *[other] { $missing } مورد کم است
    }: خبرها، اصلاحیه‌ها یا پس‌گیری‌هایی که این رسانه منتشر کرده ولی هنوز به این گره نرسیده‌اند. گره به محض اینکه یکی از همتایانش آن‌ها را داشته باشد، دریافتشان می‌کند.
home-feed = خوراک Atom
home-latest = تازه‌ترین خبرها
home-no-stories = هنوز خبری نیست.

## فهرست‌ها

pager-label = صفحه‌ها
pager-newer = → جدیدتر
pager-older = قدیمی‌تر ←
pager-position = صفحهٔ { $page } از { $pages }
facet-languages = زبان‌ها
facet-sections = بخش‌ها
facet-all = همه
publisher-own-site = وب‌سایت خود رسانه (ممکن است جایی که هستید مسدود باشد): { $address }
publisher-count =
    { $count ->
        [one] { $count } خبر.
       *[other] { $count } خبر.
    }

## جست‌وجو

search-title = جست‌وجو
search-found =
    نتیجهٔ جست‌وجوی { $query }: { $count ->
        [one] { $count } خبر.
       *[other] { $count } خبر.
    }
search-hint = واژه‌هایی را بنویسید تا در عنوان و خلاصهٔ خبرها پیدا شوند.

## خبر

story-retracted = این خبر پس گرفته شده است.
story-retracted-notice = رسانه این خبر را در { $date } پس گرفت. به جای خبر، اطلاعیهٔ آن نشان داده می‌شود.
story-old-version = شما نسخهٔ { $version } این خبر را می‌خوانید.
story-current-version = خواندن نسخهٔ کنونی ({ $version }، { $kind })
story-corrected = { $corrected } در { $date }.
story-corrected-word = اصلاح شد
story-corrects = دیدن نسخه‌ای که اصلاح شده است
story-updated = به‌روزشده در { $date }

## راستی‌آزمایی

verify-heading = راستی‌آزمایی
verify-ok = راستی‌آزمایی شد: امضا، گواهی کلید امضا و هش هر فایل پیش از آنکه این گره خبر را ذخیره کند بررسی شدند.
verify-publisher = ناشر
verify-demo = رسانهٔ نمایشی: کلید مخفی آن عمومی است، پس هر کسی می‌تواند به نام آن امضا کند.
verify-root = کلید ریشهٔ ناشر
verify-signing-key = کلید امضا
verify-certificate = گواهی کلید
verify-certificate-validity = شمارهٔ سریال { $serial }، معتبر از { $from } تا { $to }
verify-signed = زمان امضا
verify-bundle = شناسهٔ بسته
verify-sequence = شمارهٔ ترتیب
verify-version = نسخه
verify-version-kind = { $version } ({ $kind })
verify-original = نشانی اصلی
verify-versions = نسخه‌ها
verify-version-n = نسخهٔ { $version }
verify-signed-on = امضاشده در { $date }
verify-opened = نسخه‌ای که باز کرده‌اید

## ایمنی

safety-title = ایمنی
safety-quiet-strong = این گره یک خوانندهٔ خاموش است.
safety-quiet = فقط روی همین دستگاه گوش می‌دهد، به هیچ همتایی پاسخ نمی‌دهد و چیزی را به اشتراک نمی‌گذارد.
safety-share-strong = این گره به اشتراک می‌گذارد (--share).
safety-share = همتایانی که به آن برسند می‌توانند بفهمند کدام ناشران را حمل می‌کند و کدام خبرها را نگه می‌دارد.
safety-mirror-strong = این گره یک آینه است.
safety-mirror = محتوا را ارائه می‌کند، اتصال‌ها را بازپخش می‌کند و ناشرانی را که حمل می‌کند در DHT اعلام می‌کند.
safety-device-heading = چه چیزی روی این دستگاه است
safety-device = هر چه در پوشهٔ دادهٔ گره هست: خبرها، عکس‌ها و اصلاحیه‌های ناشرانی که به آن‌ها اعتماد دارید، فهرست اعتماد شما و تنظیمات گره. این‌ها بدون رمزگذاری ذخیره می‌شوند. هر کس این دستگاه یا رونوشتی از دیسک آن را داشته باشد، می‌تواند همهٔ خبرهای ذخیره‌شده را بخواند.
safety-who-heading = چه کسی چه می‌بیند
safety-mirrors-strong = آینه‌هایی که گره شما به آن‌ها وصل می‌شود
safety-mirrors = نشانی IP شما، زمان‌هایی که آنلاین هستید و حجم دریافت‌هایتان را می‌بینند. می‌بینند که شما کل گزارش آنچه حمل می‌کنند را دنبال می‌کنید، نه اینکه کدام رسانه‌ها را از میان آن‌ها می‌خوانید؛ مگر وقتی گره شما خبری را دریافت کند که بزرگ‌تر از آن است که همراه بقیه بیاید (بیش از 32 کیلوبایت، با عکس): آن دریافت به آینه می‌گوید که شما آن خبر را خواسته‌اید. اگر large_story_budget_bytes_per_day را در تنظیمات گره 0 کنید، این دریافت‌ها انجام نمی‌شوند.
safety-peers-strong = همتایان دیگر
safety-peers = اصلاً نمی‌توانند به خوانندهٔ خاموش برسند: فقط روی همین دستگاه گوش می‌دهد، به هیچ درخواستی پاسخ نمی‌دهد، در هر اجرا شناسهٔ همتای تازه‌ای می‌گیرد و در درخواست‌هایش نام هیچ رسانه‌ای را نمی‌آورد. گرهی که با --share اجرا شده به آن‌ها پاسخ می‌دهد: می‌توانند بفهمند کدام خبرها را نگه می‌دارد و کدام ناشران را حمل می‌کند، با شناسهٔ همتایی که ثابت می‌ماند.
safety-watch-strong = کسی که اتصال شما را زیر نظر دارد
safety-watch = می‌بیند که به یک آینهٔ Kolokol وصل می‌شوید، و چه زمانی؛ محتوا رمزگذاری شده است.
safety-page-strong = این صفحه را
safety-page = گره خود شما ارائه می‌کند، و فقط روی همین دستگاه، مگر اینکه با --gateway-public اجرا شده باشد.
safety-language-strong = زبانی که انتخاب کرده‌اید
safety-language = در همین مرورگر می‌ماند: در یک کوکی که با پایان نشست مرورگر از بین می‌رود و فقط به این گره فرستاده می‌شود.
safety-wipe-heading = چگونه همه‌چیز را پاک کنیم
safety-wipe = گره را متوقف کنید (Ctrl-C، یا با متوقف کردن سرویس آن)، سپس پوشهٔ دادهٔ آن را پاک کنید (به‌طور پیش‌فرض { $default }، یا پوشه‌ای که با { $flag } داده شده است). این کار همهٔ خبرها، فهرست اعتماد و تنظیمات را پاک می‌کند.

## صفحهٔ قفل گره رمزگذاری‌شده

lock-title = قفل‌شده
lock-text = این گره داده‌هایش را رمزگذاری‌شده نگه می‌دارد. برای باز کردن قفل، عبارت عبور را بنویسید.
lock-passphrase = عبارت عبور
lock-unlock = باز کردن قفل
lock-served = این صفحه را گره Kolokol خودتان ارائه می‌کند.
lock-refused = رد شد: عبارت عبور فقط از صفحهٔ خود این گره پذیرفته می‌شود.
lock-busy = تلاش دیگری در جریان است: کمی بعد دوباره امتحان کنید.
lock-too-large = فرم بیش از حد بزرگ است.
lock-stopping = گره در حال توقف است.
lock-wrong = عبارت عبور نادرست است.
lock-failed = گره نتوانست راه بیفتد: { $why }

## The "Add a newsroom" page

add-link = افزودن یک تحریریه
add-title = افزودن یک تحریریه
add-intro = متنی را که تحریریه به شما داده است (با kolokol-publisher: آغاز می‌شود) یا محتوای پرونده ناشر آن را اینجا بچسبانید. پیش از افزودن هر چیزی، نام و اثر انگشت آن را خواهید دید.
add-label = متن یا پرونده ناشر
add-file-label = یا پرونده ناشر آن را انتخاب کنید
add-url-label = یا نشانی (URL) را که تحریریه آن را در آن منتشر می‌کند وارد کنید
add-url-failed = دریافت آن ناموفق بود
add-preview = بررسی کن
add-check-heading = آیا این همان تحریریه‌ای است که در نظر داشتید؟
add-check-intro = اثر انگشت را با اثر انگشتی که تحریریه از راه دیگری به شما می‌دهد (با صدای بلند، در وب‌سایتش، روی کاغذ) مقایسه کنید. هر کسی می‌تواند پرونده‌ای با هر نامی بسازد؛ تنها اثر انگشت آن‌ها را از هم جدا می‌کند.
add-name = نام
add-fingerprint = اثر انگشت
add-root-key = کلید ریشه
add-homepage = وب‌سایت
add-mirrors = آینه‌ها
add-no-mirrors = هیچ: گره مطالب آن را تنها از راه گره‌هایی که از پیش می‌شناسد پیدا می‌کند
add-demo = این تحریریهٔ نمایشی است: کلید محرمانه‌اش عمومی است و هر کسی می‌تواند به نام آن امضا کند. هرگز برای خبرهای واقعی به آن اعتماد نکنید.
add-confirm = این تحریریه را بیفزا
add-cancel = انصراف
add-added-heading = افزوده شد
add-added = اکنون گره به آن اعتماد دارد و به آینه‌هایش وصل می‌شود؛ مطالبش با رسیدن در صفحهٔ اصلی نمایان می‌شوند.
add-home = صفحهٔ اصلی
add-not-text = این متن یا پرونده ناشر نیست
add-not-file = این پرونده ناشر معتبر نیست
add-failed = گره آن را نیفزود
add-timeout = گره به‌موقع پاسخ نداد
add-no-desk = این درگاه درون یک گره اجرا نمی‌شود و نمی‌تواند تحریریه بیفزاید. از فرمان kolokol trust add در خط فرمان استفاده کنید.
add-wrong-origin = این فرم تنها از صفحهٔ خود این درگاه پذیرفته می‌شود. صفحهٔ «افزودن یک تحریریه» گره خود را باز کنید و دوباره امتحان کنید.
