"""Every persona file parses into a Persona; the support set is complete; bad files are refused clearly."""

from pathlib import Path

import pytest

from serving.generation import GenerationSettings
from serving.personas import PERSONAS_DIR, PersonaError, load_persona, load_personas

SUPPORT = ["Order Assistant", "Billing & Pricing", "Sales & Opportunities Advisor", "Technical Support"]


@pytest.mark.parametrize("path", sorted(PERSONAS_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_every_persona_file_parses(path: Path):
    persona = load_persona(path)
    assert persona.settings(GenerationSettings()) is not None


def test_the_four_support_personas_in_picker_order():
    support = load_personas().group("support")
    assert [p.name for p in support] == SUPPORT
    for persona in support:
        prompt = persona.system_prompt.lower()
        assert "last message" in prompt and "concise" in prompt and "next step" in prompt
        assert len(persona.example_prompts) >= 3


def test_persona_defaults_override_the_model_defaults():
    persona = load_personas().get("technical_support")
    settings = persona.settings(GenerationSettings(temperature=0.9, top_k=12))
    assert settings.temperature == 0.2 and settings.top_k == 12


def write(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text(body)
    return path


BASE = "name: X\ngroup: support\nsystem_prompt: Be kind.\n"


def test_duplicate_ids_are_refused_naming_both_files(tmp_path):
    write(tmp_path, "a.yaml", "id: same\n" + BASE)
    write(tmp_path, "b.yaml", "id: same\n" + BASE)
    with pytest.raises(PersonaError, match=r"b\.yaml: duplicate persona id 'same' \(also in a\.yaml\)"):
        load_personas(tmp_path)


def test_bad_fields_name_the_file_and_field(tmp_path):
    bad_setting = write(tmp_path, "hot.yaml", "id: hot\n" + BASE + "generation: {temperature: 7}\n")
    with pytest.raises(PersonaError, match=r"hot\.yaml: field 'generation.temperature': Input should be less than or equal to 2"):
        load_persona(bad_setting)
    unknown = write(tmp_path, "typo.yaml", "id: typo\n" + BASE + "sytem: x\n")
    with pytest.raises(PersonaError, match=r"typo\.yaml: field 'sytem'"):
        load_persona(unknown)
    with pytest.raises(KeyError, match="unknown persona id 'nope'"):
        load_personas().get("nope")


def test_every_support_persona_and_the_tutor_greet_an_empty_chat(tmp_path):
    book = load_personas()
    greeted = [p for p in book.personas.values() if p.group == "support"] + [book.get("study_tutor")]
    for persona in greeted:
        assert persona.welcome.strip() and persona.name.split()[0].lower() in persona.welcome.lower(), persona.id
        assert persona.welcome not in persona.system_prompt  # a greeting for the page, never sent to the model
    too_long = write(tmp_path, "chatty.yaml", "id: chatty\n" + BASE + f"welcome: {'x' * 501}\n")
    with pytest.raises(PersonaError, match=r"chatty\.yaml: field 'welcome': String should have at most 500"):
        load_persona(too_long)
