"""Templates, hashtags and fitting posts into platform limits with real multilingual text."""

from __future__ import annotations

import pytest
import regex

from autopublish.models import Article
from autopublish.platforms.base import count_graphemes
from autopublish.render import FitError, TemplateError, article_values, fit, hashtags, template_fields

ARTICLE = Article(
    feed="site", key="k", link="https://example.go.id/berita/a/", title="Mendampingi CRO",
    summary="Ringkasan singkat.", content="Isi lengkap.", author="admin",
    categories=("Berita", "Jakarta Berketahanan", "Kegiatan"), tags=("Kegiatan", "kota tangguh"), feed_title="Jakarta Berketahanan",
)

TEXTS = {
    "indonesian": "Pemerintah Provinsi menggelar rapat koordinasi lintas dinas untuk menyiapkan penanggulangan banjir menjelang puncak musim hujan tahun ini. "
    * 4,
    "chinese": "市政府今天召开跨部门协调会议，为即将到来的雨季高峰做好防洪准备工作，并发布了城市气候风险地图。" * 4,
    "arabic": "عقدت حكومة المقاطعة اجتماعا تنسيقيا بين الإدارات للاستعداد لمواجهة الفيضانات قبل ذروة موسم الأمطار. " * 4,
    "hindi": "प्रांतीय सरकार ने बारिश के मौसम से पहले बाढ़ प्रबंधन की तैयारी के लिए अंतर-विभागीय समन्वय बैठक आयोजित की। क्षि " * 4,
    "emoji": "Keluarga 👨‍👩‍👧‍👦 hadir 🇮🇩 bersama 👍🏽 relawan 🧑🏿‍🚒 di lokasi 1️⃣ " * 6,
}


def test_known_placeholders_and_wordpress_names():
    template = "{POST_TITLE} {PERMALINK} {POST_EXCERPT} {HASHTAG_CATEGORY} {BLOG_TITLE} {USER_NICENAME} {title}"
    assert len(template_fields(template)) == 7
    values = article_values(ARTICLE)
    assert values["POST_TITLE"] == "Mendampingi CRO" and values["PERMALINK"] == ARTICLE.link


@pytest.mark.parametrize("template", ["{titel}", "{title.__class__}", "{title[0]}", "{title!r}", "{title:>10}", "{}", "{title"])
def test_unsafe_or_unknown_placeholders_are_refused(template):
    with pytest.raises(TemplateError):
        template_fields(template)


def test_hashtags_keep_unicode_and_drop_duplicates():
    assert hashtags(["Berita", "Jakarta Berketahanan", "Kegiatan", "berita"]) == "#Berita #JakartaBerketahanan #Kegiatan"
    assert hashtags(["北京 新闻", "Économie", "2026"]) == "#北京新闻 #Économie"
    assert article_values(ARTICLE)["hashtags"] == "#Berita #JakartaBerketahanan #Kegiatan #KotaTangguh"


@pytest.mark.parametrize("language", sorted(TEXTS))
@pytest.mark.parametrize("limit", [80, 140, 300])
def test_fitting_never_exceeds_and_never_cuts_a_grapheme_word_or_link(language, limit):
    text = TEXTS[language]
    values = {**article_values(ARTICLE), "summary": text, "title": "Judul"}
    template = "{title}\n\n{summary}\n\n{link}\n\n{hashtags}"
    post = fit(template, values, limit, count_graphemes)
    assert count_graphemes(post) <= limit
    assert ARTICLE.link in post  # the link is whole
    assert "#JakartaBerketahanan" in post or count_graphemes(post) > limit - 25
    parts = post.split("\n\n")
    if len(parts) < 4:  # no room for any of the summary: it was left out whole
        assert parts[0] == "Judul" and ARTICLE.link in parts[1]
        return
    kept = parts[1]
    if kept == text.strip():  # it fitted whole
        return
    assert kept.endswith("…")
    body = kept[:-1]
    assert text.startswith(body)  # a prefix of the original: no grapheme was altered
    graphemes = regex.findall(r"\X", text)
    assert "".join(graphemes).startswith(body)
    joined = ""
    for g in graphemes:  # the cut falls on a grapheme boundary
        if len(joined) >= len(body):
            break
        joined += g
    assert joined == body or joined.rstrip() == body.rstrip()
    if language in ("indonesian", "arabic", "hindi", "emoji"):  # space-separated: cut at a word boundary
        after = text[len(body):]
        assert after[:1].isspace() or after[:1] in ",.;:" or body == ""


def test_hashtags_are_dropped_whole_before_failing():
    values = {**article_values(ARTICLE), "summary": "", "title": "T"}
    post = fit("{title} {link} {hashtags}", values, 60, len)
    assert len(post) <= 60
    for tag in post.split()[2:]:
        assert tag in values["hashtags"].split()


def test_a_template_too_long_for_the_platform_is_a_clear_error():
    with pytest.raises(FitError, match="shorten the channel's template"):
        fit("A fixed text that is far too long for the limit {link}", article_values(ARTICLE), 20, len)
