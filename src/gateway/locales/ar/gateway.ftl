# صفحات البوابة بالعربية. المعرّفات نفسها الموجودة في en/gateway.ftl.

language-name = العربية
language-switch = اللغة
page-title = { $title } · Kolokol

## التخطيط المشترك

search-label = ابحث في العناوين والملخصات
search-placeholder = بحث
search-button = ابحث
footer-served = تعرض هذه الصفحات عقدة Kolokol الخاصة بك. تحقّقت العقدة من كل خبر هنا بمفتاح مؤسسته الإخبارية قبل حفظه.
footer-safety = الأمان
footer-feed = موجز Atom
footer-api = واجهة API

## الأخطاء

error-title =
    { $status ->
        [400] طلب غير صالح
        [404] غير موجود
       *[other] حدث خطأ ما
    }
error-home = الصفحة الرئيسية
error-not-found = لا يوجد شيء على هذا العنوان.
error-store = تعذّرت قراءة المخزن.
error-bad-query = يطلب هذا العنوان شيئًا لا تستطيع الصفحة عرضه: { $detail }
error-no-publisher = لا يوجد ناشر موثوق بهذا الاسم.
error-not-bundle-id = هذا ليس معرّف حزمة (64 رقمًا ست عشريًا).
error-no-story = لا تحتفظ هذه العقدة بأي خبر بهذا المعرّف من ناشر تثق به.
error-no-media = لا يوجد ملف وسائط كهذا.
error-feed = تعذّرت كتابة الموجز.

## التواريخ والمدد

month-1 = يناير
month-2 = فبراير
month-3 = مارس
month-4 = أبريل
month-5 = مايو
month-6 = يونيو
month-7 = يوليو
month-8 = أغسطس
month-9 = سبتمبر
month-10 = أكتوبر
month-11 = نوفمبر
month-12 = ديسمبر
date = { $day } { $month } { $year }، { $time } UTC
# المدد تأتي بعد «منذ»، فالمثنى مجرور.
duration-days =
    { $count ->
        [zero] { $count } يوم
        [one] يوم واحد
        [two] يومين
        [few] { $count } أيام
        [many] { $count } يومًا
       *[other] { $count } يوم
    }
duration-hours =
    { $count ->
        [zero] { $count } ساعة
        [one] ساعة واحدة
        [two] ساعتين
        [few] { $count } ساعات
        [many] { $count } ساعة
       *[other] { $count } ساعة
    }
duration-minutes =
    { $count ->
        [zero] { $count } دقيقة
        [one] دقيقة واحدة
        [two] دقيقتين
        [few] { $count } دقائق
        [many] { $count } دقيقة
       *[other] { $count } دقيقة
    }
duration-seconds =
    { $count ->
        [zero] { $count } ثانية
        [one] ثانية واحدة
        [two] ثانيتين
        [few] { $count } ثوانٍ
        [many] { $count } ثانية
       *[other] { $count } ثانية
    }
duration-pair = { $first } و{ $second }
ago = منذ { $duration }

## أنواع الحزم

kind-story = خبر
kind-correction = تصحيح
kind-retraction = سحب
badge-retracted = مسحوب
badge-corrected = مصحَّح

## الرئيسية

home-title = الرئيسية
home-heading = مؤسساتك الإخبارية
home-no-publishers = لا تثق بأي ناشر بعد. أضف ناشرًا بهذا الأمر:
home-demo-warning = مؤسسة إخبارية تجريبية: مفتاحها السري منشور للجميع. لا شيء مما توقّعه أخبار حقيقية.
home-last-heard = آخر إشارة من المؤسسة { $ago } (الرقم التسلسلي { $sequence }).
home-expired = تحذير: انتهت صلاحية آخر إشارة من هذه المؤسسة { $ago }. ربما يمنع أحدٌ أخبارها الجديدة من الوصول إليك.
home-not-heard = لم تصل منها أي إشارة بعد.
home-held =
    { $stories ->
        [zero] لا أخبار محفوظة
        [one] خبر واحد محفوظ
        [two] خبران محفوظان
        [few] { $stories } أخبار محفوظة
        [many] { $stories } خبرًا محفوظًا
       *[other] { $stories } خبر محفوظ
    } ({ $bundles ->
        [zero] لا حزم
        [one] حزمة واحدة
        [two] حزمتان
        [few] { $bundles } حزم
        [many] { $bundles } حزمة
       *[other] { $bundles } حزمة
    }).
home-missing-none = لا شيء ناقص: لدى هذه العقدة كل ما أعلنته المؤسسة.
home-missing =
    { $missing ->
        [zero] لا ينقص شيء
        [one] ينقص منشور واحد
        [two] ينقص منشوران
        [few] تنقص { $missing } منشورات
        [many] ينقص { $missing } منشورًا
       *[other] ينقص { $missing } منشور
    }: أخبار أو تصحيحات أو إشعارات سحب نشرتها المؤسسة ولم تصل إلى هذه العقدة بعد. ستجلبها العقدة حالما تتوفر لدى أحد نظرائها.
home-feed = موجز Atom
home-latest = أحدث الأخبار
home-no-stories = لا أخبار بعد.

## القوائم

pager-label = الصفحات
pager-newer = → الأحدث
pager-older = الأقدم ←
pager-position = الصفحة { $page } من { $pages }
facet-languages = اللغات
facet-sections = الأقسام
facet-all = الكل
publisher-own-site = موقعها الخاص (قد يكون محجوبًا حيث أنت): { $address }
publisher-count =
    { $count ->
        [zero] لا توجد أخبار.
        [one] خبر واحد.
        [two] خبران.
        [few] { $count } أخبار.
        [many] { $count } خبرًا.
       *[other] { $count } خبر.
    }

## البحث

search-title = بحث
search-found =
    نتائج البحث عن { $query }: { $count ->
        [zero] لا توجد أخبار.
        [one] خبر واحد.
        [two] خبران.
        [few] { $count } أخبار.
        [many] { $count } خبرًا.
       *[other] { $count } خبر.
    }
search-hint = اكتب كلمات للبحث عنها في عناوين الأخبار وملخصاتها.

## الخبر

story-retracted = سُحب هذا الخبر.
story-retracted-notice = سحبت المؤسسة الإخبارية هذا الخبر في { $date }. يُعرض إشعارها بدلًا منه.
story-old-version = أنت تقرأ الإصدار { $version } من هذا الخبر.
story-current-version = اقرأ الإصدار الحالي ({ $version }، { $kind })
story-corrected = { $corrected } في { $date }.
story-corrected-word = صُحّح
story-corrects = اطّلع على الإصدار الذي يصحّحه
story-updated = حُدّث في { $date }

## لوحة التحقق

verify-heading = التحقق
verify-ok = تم التحقق: فُحص التوقيع وشهادة مفتاح التوقيع وبصمة كل ملف قبل أن تحفظ هذه العقدة الخبر.
verify-publisher = الناشر
verify-demo = مؤسسة إخبارية تجريبية: مفتاحها السري منشور للجميع، فيستطيع أي أحد أن يوقّع باسمها.
verify-root = المفتاح الجذر للناشر
verify-signing-key = مفتاح التوقيع
verify-certificate = شهادة المفتاح
verify-certificate-validity = الرقم التسلسلي { $serial }، صالحة من { $from } إلى { $to }
verify-signed = تاريخ التوقيع
verify-bundle = معرّف الحزمة
verify-sequence = الرقم التسلسلي
verify-version = الإصدار
verify-version-kind = { $version } ({ $kind })
verify-original = العنوان الأصلي
verify-versions = الإصدارات
verify-version-n = الإصدار { $version }
verify-signed-on = وُقّع في { $date }
verify-opened = الإصدار الذي فتحته

## الأمان

safety-title = الأمان
safety-quiet-strong = هذه العقدة قارئ صامت.
safety-quiet = لا تستمع إلا على هذا الجهاز، ولا تجيب أي نظير، ولا تشارك شيئًا.
safety-share-strong = هذه العقدة تشارك (--share).
safety-share = يستطيع النظراء الذين يصلون إليها معرفة الناشرين الذين تحملهم والأخبار التي تحتفظ بها.
safety-mirror-strong = هذه العقدة مرآة.
safety-mirror = تقدّم المحتوى وتمرّر الاتصالات وتعلن في DHT عن الناشرين الذين تحملهم.
safety-device-heading = ما الموجود على هذا الجهاز
safety-device = كل ما في مجلد بيانات العقدة: أخبار الناشرين الذين تثق بهم وصورهم وتصحيحاتهم، وقائمة الثقة الخاصة بك، وإعدادات العقدة. تُحفظ كلها دون تشفير. يستطيع كل من يحوز هذا الجهاز، أو نسخة من قرصه، قراءة كل خبر حفظه.
safety-who-heading = من يرى ماذا
safety-mirrors-strong = المرايا التي تتصل بها عقدتك
safety-mirrors = ترى عنوان IP الخاص بك، ومتى تكون متصلًا، وكم تجلب من البيانات. وترى أنك تتابع السجل الكامل لما تحمله، لا أيّ المنافذ الإعلامية بينها تقرأ، إلا حين تجلب عقدتك خبرًا أكبر من أن يأتي مع غيره (أكثر من 32 كيلوبايت، مع الصور): فهذا الجلب يُعلم المرآة بأنك أردت ذلك الخبر. ضبط large_story_budget_bytes_per_day على 0 في إعدادات العقدة يوقف عمليات الجلب هذه.
safety-peers-strong = النظراء الآخرون
safety-peers = لا يستطيعون الوصول إلى القارئ الصامت أبدًا: فهو لا يستمع إلا على هذا الجهاز، ولا يجيب أي طلب، ويأخذ معرّف نظير جديدًا عند كل تشغيل، ولا يذكر أي منفذ إعلامي فيما يطلبه. أما العقدة التي شُغّلت مع --share فتجيبهم: فيستطيعون معرفة الأخبار التي تحتفظ بها والناشرين الذين تحملهم، تحت معرّف نظير ثابت.
safety-watch-strong = من يراقب اتصالك
safety-watch = يرى أنك تتصل بمرآة Kolokol، ومتى؛ أما المحتوى فمشفّر.
safety-page-strong = هذه الصفحة
safety-page = تعرضها عقدتك أنت، على هذا الجهاز فقط ما لم تُشغَّل مع --gateway-public.
safety-language-strong = اختيارك للغة
safety-language = يبقى في هذا المتصفح: في ملف تعريف ارتباط (cookie) ينتهي بانتهاء جلسة المتصفح، ولا يُرسل إلا إلى هذه العقدة.
safety-wipe-heading = كيف تمحو كل شيء
safety-wipe = أوقف العقدة (Ctrl-C، أو أوقف خدمتها)، ثم احذف مجلد بياناتها (افتراضيًا { $default }، أو المجلد المحدد بـ { $flag }). يزيل ذلك كل الأخبار وقائمة الثقة والإعدادات.

## صفحة القفل لعقدة مشفّرة

lock-title = العقدة مقفلة
lock-text = تحتفظ هذه العقدة ببياناتها مشفّرة. اكتب عبارة المرور لفتحها.
lock-passphrase = عبارة المرور
lock-unlock = فتح القفل
lock-served = تعرض هذه الصفحة عقدة Kolokol الخاصة بك.
lock-refused = مرفوض: لا تُقبل عبارة المرور إلا من صفحة هذه العقدة نفسها.
lock-busy = هناك محاولة أخرى جارية: أعد المحاولة بعد لحظة.
lock-too-large = النموذج كبير جدًا.
lock-stopping = العقدة تتوقف.
lock-wrong = عبارة المرور خاطئة.
lock-failed = تعذّر تشغيل العقدة: { $why }

## The "Add a newsroom" page

add-link = إضافة غرفة أخبار
add-title = إضافة غرفة أخبار
add-intro = ألصق النص الذي أعطتك إياه غرفة الأخبار (يبدأ بـ kolokol-publisher:)، أو محتوى ملف الناشر الخاص بها. سترى اسمها وبصمتها قبل إضافة أي شيء.
add-label = نص الناشر أو ملفه
add-file-label = أو اختر ملف الناشر الخاص بها
add-url-label = أو أدخل العنوان (URL) الذي تنشره عليه غرفة الأخبار
add-url-failed = تعذّر جلبه
add-preview = تحقّق منه
add-check-heading = هل هذه غرفة الأخبار التي قصدتها؟
add-check-intro = قارن البصمة بالبصمة التي تعطيك إياها غرفة الأخبار عبر قناة أخرى (بصوت مسموع، أو على موقعها، أو على الورق). يستطيع أي شخص أن يصنع ملفًا بأي اسم؛ البصمة وحدها تميّز بينها.
add-name = الاسم
add-fingerprint = البصمة
add-root-key = المفتاح الجذر
add-homepage = الموقع
add-mirrors = المرايا
add-no-mirrors = لا يوجد: لن تجد العقدة قصصها إلا عبر العقد التي تعرفها مسبقًا
add-demo = هذه غرفة الأخبار التجريبية: مفتاحها السري معلن، فيستطيع أي شخص أن يوقّع باسمها. لا تثق بها أبدًا في الأخبار الحقيقية.
add-confirm = أضف غرفة الأخبار هذه
add-cancel = إلغاء
add-added-heading = أُضيفت
add-added = صارت العقدة تثق بها الآن وتتصل بمراياها؛ ستظهر قصصها على الصفحة الرئيسية حين تصل.
add-home = الصفحة الرئيسية
add-not-text = هذا ليس نص ناشر ولا ملف ناشر
add-not-file = هذا ليس ملف ناشر صالحًا
add-failed = لم تُضفها العقدة
add-timeout = لم تُجب العقدة في الوقت المحدد
add-no-desk = لا تعمل هذه البوابة داخل عقدة، فلا يمكنها إضافة غرف الأخبار. استخدم الأمر kolokol trust add في سطر الأوامر.
add-wrong-origin = لا يُقبل هذا النموذج إلا من صفحة هذه البوابة نفسها. افتح صفحة «إضافة غرفة أخبار» في عقدتك وحاول مجددًا.
