"""The portal's words in Finnish, Swedish and English: every label, every code's human name, dates
and numbers in each locale's form. One dict per language with the same keys (a unit test checks
that none is missing in any language, and that every code of the contracts has a name)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

LANGUAGES = ("fi", "sv", "en")
Lang = Literal["fi", "sv", "en"]
DEFAULT = "fi"
# Each language's own name, for the switch (always written in that language).
NATIVE = {"fi": "suomeksi", "sv": "på svenska", "en": "in English"}
LANGUAGE_NAMES = {
    "fi": {"fi": "suomi", "sv": "ruotsi", "en": "englanti"},
    "sv": {"fi": "finska", "sv": "svenska", "en": "engelska"},
    "en": {"fi": "Finnish", "sv": "Swedish", "en": "English"},
}

MESSAGES: dict[str, dict[str, str]] = {
    "fi": {
        "site": "Kokeilu – Espoon kokeilujen tulokset",
        "site_short": "Kokeilu",
        "skip": "Siirry sisältöön",
        "nav": "Päävalikko",
        "nav_home": "Etusivu",
        "nav_results": "Kaikki tulokset",
        "nav_open_data": "Avoin data",
        "language": "Kieli",
        "landing_title": "Mitä Espoon kokeiluista opittiin",
        "landing_intro": "Yritykset, koulut ja asukkaat kokeilevat ratkaisuja Espoon testiympäristöissä. "
        "Täältä löydät jokaisen kokeilun tavoitteet, mittarit ja opit – vapaasti käytettäväksi.",
        "search": "Hae",
        "search_label": "Hae tuloksista",
        "search_hint": "Esimerkiksi: koulu, sukkulabussi, jäte",
        "filters": "Rajaa",
        "apply": "Näytä tulokset",
        "clear": "Poista rajaukset",
        "any": "Kaikki",
        "browse": "Selaa aiheittain",
        "latest": "Uusimmat tulokset",
        "see_all": "Näytä kaikki tulokset",
        "results_title": "Tulokset",
        "results_count": "{n} tulosta",
        "results_count_one": "1 tulos",
        "results_for": "haulla ”{q}”",
        "no_results": "Ei tuloksia näillä ehdoilla.",
        "next_page": "Seuraava sivu",
        "first_page": "Ensimmäiselle sivulle",
        "facet_focus_area": "Painopiste",
        "facet_environment": "Testiympäristö",
        "facet_status": "Tila",
        "facet_outcome": "Lopputulos",
        "facet_year": "Vuosi",
        "status": "Tila",
        "focus_area": "Painopiste",
        "where": "Missä",
        "proposed_by": "Ehdottaja",
        "proposer_kind": "Ehdottajan tyyppi",
        "partners": "Kumppanit",
        "hypothesis": "Hypoteesi",
        "budget": "Budjetti",
        "duration": "Kesto",
        "weeks": "{n} viikkoa",
        "started": "Alkoi",
        "completed": "Päättyi",
        "outcome": "Lopputulos",
        "decision": "Arviointipäätös",
        "rationale": "Perustelu",
        "contact": "Yhteystiedot",
        "licence": "Lisenssi",
        "kpis": "Mittarit",
        "kpi": "Mittari",
        "unit": "Yksikkö",
        "baseline": "Lähtötaso",
        "target": "Tavoite",
        "actual": "Toteuma",
        "lessons": "Opit",
        "published": "Julkaistu {d}",
        "updated": "päivitetty {d}",
        "kpis_over_time": "Mittarit ajan mittaan",
        "no_measurements": "Tälle kokeilulle ei ole vielä kirjattu mittauksia.",
        "chart_title": "{kpi}: päivän keskiarvo",
        "chart_desc": "{n} mittausta {start}–{end}. Päivän keskiarvo vaihteli välillä {low}–{high} {unit}; "
        "viimeisin arvo {last}. Lähtötaso {baseline}, tavoite {target}.",
        "mean": "Keskiarvo",
        "min": "Pienin",
        "max": "Suurin",
        "last": "Viimeisin",
        "count": "Määrä",
        "period": "Päivä",
        "show_table": "Näytä luvut taulukkona",
        "table_caption": "{kpi} ({unit}) päivittäin",
        "csv": "Lataa mittaukset (CSV)",
        "legend_mean": "päivän keskiarvo",
        "legend_range": "päivän vaihteluväli",
        "score": "Painotettu pistemäärä {score}/5: {decision}.",
        "strongest": "Vahvin: {best} ({best_v}); heikoin: {worst} ({worst_v}).",
        "all_equal": "Kaikki kriteerit saivat saman arvion ({v}).",
        "criteria": "Kriteerien keskiarvot",
        "original_language": "Kokeilun kuvaus on kirjoitettu kielellä {language}.",
        "open_data": "Avoin data",
        "open_data_intro": "Kaikki tulokset ovat avointa dataa (CC BY 4.0) ilman kirjautumista.",
        "dcat": "DCAT-AP-luettelo (JSON-LD)",
        "all_csv": "Kaikki tulokset (CSV)",
        "as_json": "Tämä tulos JSON-muodossa",
        "topic_docs": "Julkinen tulosvirta kokeilu.results.v1",
        "topic_text": "Kehittäjät voivat tilata tulokset Kafka-aiheesta kokeilu.results.v1: tapahtumat "
        "result.published, result.updated ja result.withdrawn (CloudEvents, JSON), avaimena "
        "tuloksen tunniste. Aihe on tiivistetty (compacted): alusta luettuna se antaa jokaisen "
        "tuloksen nykytilan. Tapahtumissa ei ole henkilötietoja. Mittarien aikasarjat julkaistaan "
        "tapahtumassa, kun kokeilu päättyy; sitä ennen ne näkyvät tällä sivustolla ja JSON-muodossa.",
        "topic_schemas": "Skeemat: schemas/events/fi.espoo.kokeilu.result.*.v1.json ja schemas/asyncapi.json "
        "ohjelmiston lähdekoodissa.",
        "reuse": "Käytä vapaasti lisenssillä",
        "error_title": "Virhe",
        "not_found_title": "Sivua ei löytynyt",
        "not_found": "Tulosta ei ole luettelossa (tai se on poistettu).",
        "bad_request_title": "Pyyntöä ei voitu käsitellä",
        "bad_value": "Arvo ”{value}” ei kelpaa kentälle {field}.",
        "back": "Takaisin etusivulle",
        "page_of": "Sivu",
    },
    "sv": {
        "site": "Kokeilu – resultat av Esbos försök",
        "site_short": "Kokeilu",
        "skip": "Hoppa till innehållet",
        "nav": "Huvudmeny",
        "nav_home": "Startsida",
        "nav_results": "Alla resultat",
        "nav_open_data": "Öppna data",
        "language": "Språk",
        "landing_title": "Vad Esbos försök har lärt oss",
        "landing_intro": "Företag, skolor och invånare prövar lösningar i Esbos testmiljöer. Här finns varje "
        "försöks mål, mätare och lärdomar – fritt att återanvända.",
        "search": "Sök",
        "search_label": "Sök bland resultaten",
        "search_hint": "Till exempel: skola, matarbuss, avfall",
        "filters": "Avgränsa",
        "apply": "Visa resultat",
        "clear": "Ta bort avgränsningar",
        "any": "Alla",
        "browse": "Bläddra efter ämne",
        "latest": "Senaste resultat",
        "see_all": "Visa alla resultat",
        "results_title": "Resultat",
        "results_count": "{n} resultat",
        "results_count_one": "1 resultat",
        "results_for": "för sökningen ”{q}”",
        "no_results": "Inga resultat med dessa villkor.",
        "next_page": "Nästa sida",
        "first_page": "Till första sidan",
        "facet_focus_area": "Fokusområde",
        "facet_environment": "Testmiljö",
        "facet_status": "Status",
        "facet_outcome": "Utfall",
        "facet_year": "År",
        "status": "Status",
        "focus_area": "Fokusområde",
        "where": "Var",
        "proposed_by": "Förslagsställare",
        "proposer_kind": "Typ av förslagsställare",
        "partners": "Partner",
        "hypothesis": "Hypotes",
        "budget": "Budget",
        "duration": "Längd",
        "weeks": "{n} veckor",
        "started": "Började",
        "completed": "Avslutades",
        "outcome": "Utfall",
        "decision": "Bedömningsbeslut",
        "rationale": "Motivering",
        "contact": "Kontakt",
        "licence": "Licens",
        "kpis": "Mätare",
        "kpi": "Mätare",
        "unit": "Enhet",
        "baseline": "Utgångsläge",
        "target": "Mål",
        "actual": "Utfall",
        "lessons": "Lärdomar",
        "published": "Publicerad {d}",
        "updated": "uppdaterad {d}",
        "kpis_over_time": "Mätarna över tid",
        "no_measurements": "Inga mätningar har registrerats för detta försök ännu.",
        "chart_title": "{kpi}: dagens medelvärde",
        "chart_desc": "{n} mätningar {start}–{end}. Dagens medelvärde låg mellan {low} och {high} {unit}; "
        "senaste värde {last}. Utgångsläge {baseline}, mål {target}.",
        "mean": "Medelvärde",
        "min": "Minsta",
        "max": "Största",
        "last": "Senaste",
        "count": "Antal",
        "period": "Dag",
        "show_table": "Visa siffrorna som tabell",
        "table_caption": "{kpi} ({unit}) per dag",
        "csv": "Ladda ner mätningarna (CSV)",
        "legend_mean": "dagens medelvärde",
        "legend_range": "dagens variation",
        "score": "Viktade poäng {score}/5: {decision}.",
        "strongest": "Starkast: {best} ({best_v}); svagast: {worst} ({worst_v}).",
        "all_equal": "Alla kriterier fick samma bedömning ({v}).",
        "criteria": "Kriteriernas medelvärden",
        "original_language": "Försöket är beskrivet på {language}.",
        "open_data": "Öppna data",
        "open_data_intro": "Alla resultat är öppna data (CC BY 4.0) utan inloggning.",
        "dcat": "DCAT-AP-katalog (JSON-LD)",
        "all_csv": "Alla resultat (CSV)",
        "as_json": "Detta resultat som JSON",
        "topic_docs": "Den öppna resultatströmmen kokeilu.results.v1",
        "topic_text": "Utvecklare kan prenumerera på resultaten i Kafka-ämnet kokeilu.results.v1: händelserna "
        "result.published, result.updated och result.withdrawn (CloudEvents, JSON) med resultatets "
        "id som nyckel. Ämnet är komprimerat (compacted): läst från början ger det varje resultats "
        "nuvarande läge. Händelserna innehåller inga personuppgifter. Mätarnas tidsserier publiceras i "
        "händelsen när försöket avslutas; innan dess visas de på denna webbplats och som JSON.",
        "topic_schemas": "Scheman: schemas/events/fi.espoo.kokeilu.result.*.v1.json och schemas/asyncapi.json "
        "i programvarans källkod.",
        "reuse": "Fri att återanvända under",
        "error_title": "Fel",
        "not_found_title": "Sidan hittades inte",
        "not_found": "Resultatet finns inte i katalogen (eller har tagits bort).",
        "bad_request_title": "Begäran kunde inte behandlas",
        "bad_value": "Värdet ”{value}” duger inte för fältet {field}.",
        "back": "Tillbaka till startsidan",
        "page_of": "Sida",
    },
    "en": {
        "site": "Kokeilu – results of Espoo's experiments",
        "site_short": "Kokeilu",
        "skip": "Skip to content",
        "nav": "Main menu",
        "nav_home": "Home",
        "nav_results": "All results",
        "nav_open_data": "Open data",
        "language": "Language",
        "landing_title": "What Espoo's experiments taught us",
        "landing_intro": "Companies, schools and residents try out ideas in Espoo's test environments. Here are "
        "each pilot's goals, KPIs and lessons – free to reuse.",
        "search": "Search",
        "search_label": "Search the results",
        "search_hint": "For example: school, shuttle, waste",
        "filters": "Filter",
        "apply": "Show results",
        "clear": "Clear filters",
        "any": "Any",
        "browse": "Browse by topic",
        "latest": "Latest results",
        "see_all": "See all results",
        "results_title": "Results",
        "results_count": "{n} results",
        "results_count_one": "1 result",
        "results_for": "for “{q}”",
        "no_results": "No results match these filters.",
        "next_page": "Next page",
        "first_page": "Back to the first page",
        "facet_focus_area": "Focus area",
        "facet_environment": "Test environment",
        "facet_status": "Status",
        "facet_outcome": "Outcome",
        "facet_year": "Year",
        "status": "Status",
        "focus_area": "Focus area",
        "where": "Where",
        "proposed_by": "Proposed by",
        "proposer_kind": "Kind of proposer",
        "partners": "Partners",
        "hypothesis": "Hypothesis",
        "budget": "Budget",
        "duration": "Duration",
        "weeks": "{n} weeks",
        "started": "Started",
        "completed": "Completed",
        "outcome": "Outcome",
        "decision": "Evaluation decision",
        "rationale": "Rationale",
        "contact": "Contact",
        "licence": "Licence",
        "kpis": "KPIs",
        "kpi": "KPI",
        "unit": "Unit",
        "baseline": "Baseline",
        "target": "Target",
        "actual": "Actual",
        "lessons": "Lessons learned",
        "published": "Published {d}",
        "updated": "updated {d}",
        "kpis_over_time": "KPIs over time",
        "no_measurements": "No measurements have been recorded for this pilot yet.",
        "chart_title": "{kpi}: daily mean",
        "chart_desc": "{n} measurements from {start} to {end}. The daily mean ranged from {low} to {high} {unit}; "
        "latest value {last}. Baseline {baseline}, target {target}.",
        "mean": "Mean",
        "min": "Min",
        "max": "Max",
        "last": "Last",
        "count": "Count",
        "period": "Day",
        "show_table": "Show the numbers as a table",
        "table_caption": "{kpi} ({unit}) per day",
        "csv": "Download the measurements (CSV)",
        "legend_mean": "daily mean",
        "legend_range": "daily range",
        "score": "Weighted score {score} of 5: {decision}.",
        "strongest": "Strongest: {best} ({best_v}); weakest: {worst} ({worst_v}).",
        "all_equal": "All criteria scored equally ({v}).",
        "criteria": "Criterion averages",
        "original_language": "The pilot is described in {language}.",
        "open_data": "Open data",
        "open_data_intro": "Every result is open data (CC BY 4.0), with no login.",
        "dcat": "DCAT-AP catalogue (JSON-LD)",
        "all_csv": "All results (CSV)",
        "as_json": "This result as JSON",
        "topic_docs": "The public results topic kokeilu.results.v1",
        "topic_text": "Developers can subscribe to the results on the Kafka topic kokeilu.results.v1: the events "
        "result.published, result.updated and result.withdrawn (CloudEvents, JSON), keyed by result "
        "id. The topic is compacted: read from the beginning, it gives every result's current state. "
        "The events carry no personal data. KPI series are published in the event sent when a pilot "
        "completes; until then they are on this site and in the JSON.",
        "topic_schemas": "Schemas: schemas/events/fi.espoo.kokeilu.result.*.v1.json and schemas/asyncapi.json "
        "in the platform's source.",
        "reuse": "Reuse freely under",
        "error_title": "Error",
        "not_found_title": "Page not found",
        "not_found": "This result is not in the catalogue (or was withdrawn).",
        "bad_request_title": "The request could not be handled",
        "bad_value": "“{value}” is not a valid value for {field}.",
        "back": "Back to the home page",
        "page_of": "Page",
    },
}

# Human names of every code a result carries, per language.
CODES: dict[str, dict[str, dict[str, str]]] = {
    "focus_area": {
        "fi": {
            "smart_mobility": "Älykäs liikkuminen",
            "learning": "Oppiminen",
            "sustainable_development": "Kestävä kehitys",
        },
        "sv": {
            "smart_mobility": "Smart mobilitet",
            "learning": "Lärande",
            "sustainable_development": "Hållbar utveckling",
        },
        "en": {
            "smart_mobility": "Smart mobility",
            "learning": "Learning",
            "sustainable_development": "Sustainable development",
        },
    },
    "environment": {
        "fi": {
            "west_metro": "Länsimetron kasvukäytävä",
            "kera": "Kera",
            "waterfront_walkway": "Rantaraitti",
            "school": "Espoon koulut",
            "citywide": "Koko Espoo",
        },
        "sv": {
            "west_metro": "Västmetrons tillväxtkorridor",
            "kera": "Kera",
            "waterfront_walkway": "Strandleden",
            "school": "Esbos skolor",
            "citywide": "Hela Esbo",
        },
        "en": {
            "west_metro": "West Metro growth corridor",
            "kera": "Kera",
            "waterfront_walkway": "Waterfront Walkway",
            "school": "Schools of Espoo",
            "citywide": "All of Espoo",
        },
    },
    "status": {
        "fi": {
            "in_evaluation": "Arvioitavana",
            "planned": "Hyväksytty, alkamassa",
            "piloting": "Käynnissä",
            "completed": "Päättynyt",
        },
        "sv": {
            "in_evaluation": "Under bedömning",
            "planned": "Godkänt, startar snart",
            "piloting": "Pågår",
            "completed": "Avslutat",
        },
        "en": {
            "in_evaluation": "Being evaluated",
            "planned": "Approved, not started",
            "piloting": "Running",
            "completed": "Completed",
        },
    },
    "outcome": {
        "fi": {"scale_up": "Laajennetaan", "iterate": "Kehitetään ja kokeillaan uudelleen", "stop": "Lopetetaan"},
        "sv": {"scale_up": "Skalas upp", "iterate": "Vidareutvecklas och prövas igen", "stop": "Avslutas"},
        "en": {"scale_up": "Scale up", "iterate": "Refine and try again", "stop": "Stop"},
    },
    "decision": {
        "fi": {"approved": "hyväksytty", "rejected": "hylätty", "revision_requested": "pyydetty täydentämään"},
        "sv": {"approved": "godkänt", "rejected": "avslaget", "revision_requested": "komplettering begärd"},
        "en": {"approved": "approved", "rejected": "rejected", "revision_requested": "revision requested"},
    },
    "criterion": {
        "fi": {
            "strategy_fit": "sopivuus kaupunkistrategiaan",
            "feasibility": "toteutettavuus",
            "impact": "vaikuttavuus",
            "sustainability": "kestävyys",
            "reuse_scalability": "monistettavuus ja skaalautuvuus",
        },
        "sv": {
            "strategy_fit": "förenlighet med stadsstrategin",
            "feasibility": "genomförbarhet",
            "impact": "genomslag",
            "sustainability": "hållbarhet",
            "reuse_scalability": "återanvändning och skalbarhet",
        },
        "en": {
            "strategy_fit": "fit with the city strategy",
            "feasibility": "feasibility",
            "impact": "impact",
            "sustainability": "sustainability",
            "reuse_scalability": "reuse and scalability",
        },
    },
    "proposer_kind": {
        "fi": {
            "company": "Yritys",
            "school": "Koulu",
            "resident": "Asukas",
            "research": "Tutkimuslaitos",
            "city_unit": "Kaupungin yksikkö",
        },
        "sv": {
            "company": "Företag",
            "school": "Skola",
            "resident": "Invånare",
            "research": "Forskningsinstitut",
            "city_unit": "Stadens enhet",
        },
        "en": {
            "company": "Company",
            "school": "School",
            "resident": "Resident",
            "research": "Research institute",
            "city_unit": "City unit",
        },
    },
}

_MONTHS_EN = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def pick(requested: str | None, accept_language: str | None = None, default: str = DEFAULT) -> str:
    """`requested` when it is one of ours, else the best of the Accept-Language header, else `default`."""
    if requested in LANGUAGES:
        return requested
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in LANGUAGES:
            return tag
    return default


class Translator:
    """The words of one language, as templates use them: t("key", n=3), code("status", "piloting")."""

    def __init__(self, lang: str):
        self.lang = lang if lang in LANGUAGES else DEFAULT
        self.messages = MESSAGES[self.lang]

    def __call__(self, key: str, **values: object) -> str:
        text = self.messages[key]
        return text.format(**values) if values else text

    def code(self, kind: str, value: Any) -> str:  # a code, or an enum of one
        value = getattr(value, "value", value)
        return CODES[kind][self.lang].get(value, str(value).replace("_", " "))

    def language_name(self, lang: str) -> str:
        return LANGUAGE_NAMES[self.lang].get(lang, lang)

    def date(self, value: date | datetime | None) -> str:
        """1.5.2026 in Finnish and Swedish (as written in Finland), 1 May 2026 in English."""
        if value is None:
            return ""
        d = value.date() if isinstance(value, datetime) else value
        if self.lang == "en":
            return f"{d.day} {_MONTHS_EN[d.month - 1]} {d.year}"
        return f"{d.day}.{d.month}.{d.year}"

    def number(self, value: float | None, digits: int = 2, trim: bool = True) -> str:
        """At most `digits` decimals (exactly `digits` when not `trim`); decimal comma and a narrow no-break space
        between thousands in Finnish and Swedish, as they write it."""
        if value is None:
            return "–"
        text = f"{value:,.{digits}f}"
        if "." in text and trim:
            text = text.rstrip("0").rstrip(".")
        if text in ("-0", ""):
            text = "0"
        if self.lang in ("fi", "sv"):
            text = text.replace(",", "\u202f").replace(".", ",").replace("-", "\u2212")
        return text

    def count(self, n: int) -> str:
        return self("results_count_one") if n == 1 else self("results_count", n=n)
