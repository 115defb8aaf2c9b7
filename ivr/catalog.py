"""The IVR's prompts: every sentence a caller hears, in English, French and Brazilian Portuguese.

Texts are looked up by key and filled with named parameters. English serves every region whose
IVR language is English (the `<Say language=…>` still follows the region: en-GB, en-IN, …).
The English severity definitions come from the policy (sla.toml), so what the IVR reads is what
staff configured; the French and Portuguese ones are translations kept here.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from types import MappingProxyType

ENGLISH = "en"
# The <Say> language used when a caller switches to English, or the region's language has no
# catalog (an English text read with another language's voice would be unintelligible).
ENGLISH_VOICE = "en-US"
# Prompts only ever read in English (the offer to switch to English).
ENGLISH_ONLY = frozenset({"offer_english"})

_EN: dict[str, str] = {
    "greeting": "Thank you for calling Premium Support.",
    "offer_english": "To continue in English, press star.",
    "pin_prompt": "Please enter your support PIN, followed by the pound key.",
    "pin_prompt_again": "Please enter your support PIN again, followed by the pound key.",
    "pin_not_recognised": "Sorry, that PIN was not recognised.",
    "pin_no_input": "Sorry, we did not receive a PIN.",
    "pin_failed": "We could not verify your PIN.",
    "pin_verified": "Thank you, your PIN is verified.",
    "pin_hold": "We are checking many PINs right now. Please hold for a moment.",
    "pin_busy": "Sorry, we cannot check your PIN right now. Please call again in a few minutes.",
    "locked": "For your security, PIN entry from this phone number is temporarily locked.",
    "not_entitled": (
        "Phone support is part of Premium Support, and your account's plan does not include it."
    ),
    "reach_us": (
        "You can reach our support team by email at {email}, or by chat from your admin portal. "
        "Goodbye."
    ),
    "severity_intro": "Please choose how severe the issue is.",
    "severity_option": "For severity {number}: {definition} Press {number}.",
    "severity.S1": (
        "Entire loss of functionality; severe operational impact; majority of users impacted."
    ),
    "severity.S2": "Major loss of functionality and operations; high user impact.",
    "severity.S3": (
        "Partial, non-critical issue; operations not severely impacted; low user impact."
    ),
    "severity_default": "We will record the issue as severity {number}.",
    "topic_intro": "What is your call about?",
    "topic_option": "For {label}, press {digit}.",
    "topic.windows": "Windows",
    "topic.mac": "Mac",
    "topic.linux": "Linux",
    "topic.identity": "identity: single sign-on, multi-factor authentication, LDAP or RADIUS",
    "topic.devices": "devices: device management and policies",
    "topic.directory": (
        "directory: Active Directory import or sync, or HR and identity provider sync"
    ),
    "category.licensing": "licensing, contracts or billing",
    "category.migration": "a migration from Active Directory or Okta",
    "category.escalation": "an account escalation",
    "topic.other": "anything else",
    "topic_default": "We will pass your call to the next available engineer.",
    "menu_invalid": "Sorry, that is not one of the choices.",
    "menu_no_input": "Sorry, we did not hear a choice.",
    "connecting": (
        "Thank you. Your reference is {reference}. Please hold while we connect you to an engineer."
    ),
    "queue_position": "You are number {position} in the queue.",
    "queue_wait_minutes": "The expected wait is about {minutes} minutes.",
    "queue_wait_one_minute": "The expected wait is about one minute.",
    "queue_wait_short": "An engineer will be with you shortly.",
    "queue_failed": "Sorry, we could not place you in the queue.",
    "technical_difficulty": "Sorry, we are having technical difficulties.",
    "fallback": (
        "Thank you for calling Premium Support. We are having technical difficulties and cannot "
        "check PINs right now. Please hold, and the next available engineer will take your call."
    ),
    "hold_for_engineer": "Please hold, and the next available engineer will take your call.",
    "goodbye": "Thank you for calling. Goodbye.",
}

_FR: dict[str, str] = {
    "greeting": "Merci d'avoir appelé le support Premium.",
    "pin_prompt": "Veuillez saisir votre code PIN de support, suivi de la touche dièse.",
    "pin_prompt_again": (
        "Veuillez saisir à nouveau votre code PIN de support, suivi de la touche dièse."
    ),
    "pin_not_recognised": "Désolé, ce code PIN n'a pas été reconnu.",
    "pin_no_input": "Désolé, nous n'avons pas reçu de code PIN.",
    "pin_failed": "Nous n'avons pas pu vérifier votre code PIN.",
    "pin_verified": "Merci, votre code PIN est vérifié.",
    "pin_hold": (
        "Nous vérifions de nombreux codes PIN en ce moment. Veuillez patienter un instant."
    ),
    "pin_busy": (
        "Désolé, nous ne pouvons pas vérifier votre code PIN pour le moment. "
        "Veuillez rappeler dans quelques minutes."
    ),
    "locked": (
        "Pour votre sécurité, la saisie du code PIN depuis ce numéro est temporairement bloquée."
    ),
    "not_entitled": (
        "Le support téléphonique fait partie du support Premium, "
        "et l'offre de votre compte ne l'inclut pas."
    ),
    "reach_us": (
        "Vous pouvez joindre notre équipe de support par e-mail à l'adresse {email}, "
        "ou par chat depuis votre portail d'administration. Au revoir."
    ),
    "severity_intro": "Veuillez indiquer la gravité du problème.",
    "severity_option": "Pour la gravité {number} : {definition} Appuyez sur {number}.",
    "severity.S1": (
        "perte totale de fonctionnalité ; impact opérationnel sévère ; "
        "la majorité des utilisateurs est touchée."
    ),
    "severity.S2": (
        "perte majeure de fonctionnalité et d'activité ; impact élevé sur les utilisateurs."
    ),
    "severity.S3": (
        "problème partiel et non critique ; activité peu perturbée ; "
        "faible impact sur les utilisateurs."
    ),
    "severity_default": "Nous enregistrons le problème en gravité {number}.",
    "topic_intro": "Quel est l'objet de votre appel ?",
    "topic_option": "Pour {label}, appuyez sur {digit}.",
    "topic.windows": "Windows",
    "topic.mac": "Mac",
    "topic.linux": "Linux",
    "topic.identity": (
        "l'identité : authentification unique, authentification multifacteur, LDAP ou RADIUS"
    ),
    "topic.devices": "les appareils : gestion des appareils et stratégies",
    "topic.directory": (
        "l'annuaire : import ou synchronisation Active Directory, "
        "ou synchronisation RH et fournisseur d'identité"
    ),
    "category.licensing": "les licences, contrats ou la facturation",
    "category.migration": "une migration depuis Active Directory ou Okta",
    "category.escalation": "une escalade concernant votre compte",
    "topic.other": "toute autre question",
    "topic_default": "Nous transmettons votre appel au prochain ingénieur disponible.",
    "menu_invalid": "Désolé, ce choix n'est pas proposé.",
    "menu_no_input": "Désolé, nous n'avons pas entendu votre choix.",
    "connecting": (
        "Merci. Votre référence est {reference}. "
        "Veuillez patienter, nous vous mettons en relation avec un ingénieur."
    ),
    "queue_position": "Vous êtes en position {position} dans la file d'attente.",
    "queue_wait_minutes": "Le temps d'attente estimé est d'environ {minutes} minutes.",
    "queue_wait_one_minute": "Le temps d'attente estimé est d'environ une minute.",
    "queue_wait_short": "Un ingénieur va vous répondre dans un instant.",
    "queue_failed": "Désolé, nous n'avons pas pu vous placer dans la file d'attente.",
    "technical_difficulty": "Désolé, nous rencontrons des difficultés techniques.",
    "fallback": (
        "Merci d'avoir appelé le support Premium. Nous rencontrons des difficultés techniques "
        "et ne pouvons pas vérifier les codes PIN pour le moment. Veuillez patienter, le "
        "prochain ingénieur disponible va prendre votre appel."
    ),
    "hold_for_engineer": (
        "Veuillez patienter, le prochain ingénieur disponible va prendre votre appel."
    ),
    "goodbye": "Merci de votre appel. Au revoir.",
}

_PT: dict[str, str] = {
    "greeting": "Obrigado por ligar para o Suporte Premium.",
    "pin_prompt": "Digite o seu PIN de suporte, seguido da tecla jogo da velha.",
    "pin_prompt_again": "Digite novamente o seu PIN de suporte, seguido da tecla jogo da velha.",
    "pin_not_recognised": "Desculpe, esse PIN não foi reconhecido.",
    "pin_no_input": "Desculpe, não recebemos nenhum PIN.",
    "pin_failed": "Não foi possível verificar o seu PIN.",
    "pin_verified": "Obrigado, o seu PIN foi verificado.",
    "pin_hold": "Estamos verificando muitos PINs neste momento. Aguarde um instante.",
    "pin_busy": (
        "Desculpe, não é possível verificar o seu PIN agora. Ligue novamente em alguns minutos."
    ),
    "locked": (
        "Para sua segurança, a digitação do PIN a partir deste número está "
        "temporariamente bloqueada."
    ),
    "not_entitled": (
        "O suporte por telefone faz parte do Suporte Premium, e o plano da sua conta não o inclui."
    ),
    "reach_us": (
        "Você pode falar com a nossa equipe de suporte pelo e-mail {email}, "
        "ou pelo chat no seu portal de administração. Até logo."
    ),
    "severity_intro": "Escolha a gravidade do problema.",
    "severity_option": "Para gravidade {number}: {definition} Tecle {number}.",
    "severity.S1": (
        "perda total de funcionalidade; impacto operacional grave; "
        "a maioria dos usuários é afetada."
    ),
    "severity.S2": "perda importante de funcionalidade e das operações; alto impacto nos usuários.",
    "severity.S3": (
        "problema parcial e não crítico; operações pouco afetadas; baixo impacto nos usuários."
    ),
    "severity_default": "Vamos registrar o problema com gravidade {number}.",
    "topic_intro": "Qual é o assunto da sua ligação?",
    "topic_option": "Para {label}, tecle {digit}.",
    "topic.windows": "Windows",
    "topic.mac": "Mac",
    "topic.linux": "Linux",
    "topic.identity": "identidade: login único, autenticação multifator, LDAP ou RADIUS",
    "topic.devices": "dispositivos: gerenciamento de dispositivos e políticas",
    "topic.directory": (
        "diretório: importação ou sincronização do Active Directory, "
        "ou sincronização com RH e provedor de identidade"
    ),
    "category.licensing": "licenças, contratos ou faturamento",
    "category.migration": "uma migração do Active Directory ou do Okta",
    "category.escalation": "um escalonamento da sua conta",
    "topic.other": "qualquer outro assunto",
    "topic_default": "Vamos transferir a sua ligação para o próximo engenheiro disponível.",
    "menu_invalid": "Desculpe, essa opção não existe.",
    "menu_no_input": "Desculpe, não ouvimos a sua escolha.",
    "connecting": (
        "Obrigado. A sua referência é {reference}. "
        "Aguarde enquanto transferimos você para um engenheiro."
    ),
    "queue_position": "Você é o número {position} na fila.",
    "queue_wait_minutes": "O tempo de espera estimado é de cerca de {minutes} minutos.",
    "queue_wait_one_minute": "O tempo de espera estimado é de cerca de um minuto.",
    "queue_wait_short": "Um engenheiro vai atender você em instantes.",
    "queue_failed": "Desculpe, não foi possível colocar você na fila.",
    "technical_difficulty": "Desculpe, estamos com dificuldades técnicas.",
    "fallback": (
        "Obrigado por ligar para o Suporte Premium. Estamos com dificuldades técnicas e não "
        "podemos verificar PINs no momento. Aguarde, o próximo engenheiro disponível vai "
        "atender a sua ligação."
    ),
    "hold_for_engineer": "Aguarde, o próximo engenheiro disponível vai atender a sua ligação.",
    "goodbye": "Obrigado pela sua ligação. Até logo.",
}

MESSAGES: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {ENGLISH: MappingProxyType(_EN), "fr-FR": MappingProxyType(_FR), "pt-BR": MappingProxyType(_PT)}
)


class CatalogError(KeyError):
    """A prompt key or one of its parameters is missing."""


def placeholders(text: str) -> frozenset[str]:
    """Return the names of the ``{parameters}`` a text uses."""
    return frozenset(name for _, name, _, _ in string.Formatter().parse(text) if name)


class Catalog:
    """Prompts by language; English texts may be overridden (the policy's severity wording)."""

    def __init__(
        self,
        messages: Mapping[str, Mapping[str, str]] = MESSAGES,
        english_overrides: Mapping[str, str] | None = None,
    ) -> None:
        self._messages = {language: dict(texts) for language, texts in messages.items()}
        self._messages[ENGLISH].update(english_overrides or {})

    def text_language(self, voice_language: str) -> str:
        """Return the catalog language that serves a <Say> language (English for any en-XX)."""
        if voice_language in self._messages:
            return voice_language
        return ENGLISH

    def voice_language(self, region_language: str) -> str:
        """Return the <Say> language to use for a region's IVR language tag."""
        if region_language in self._messages or region_language.split("-")[0] == ENGLISH:
            return region_language
        return ENGLISH_VOICE

    def is_english(self, voice_language: str) -> bool:
        """Return True when callers using this <Say> language already hear English."""
        return self.text_language(voice_language) == ENGLISH

    def text(self, voice_language: str, key: str, params: Mapping[str, object]) -> str:
        """Return the text of ``key`` in the language that serves ``voice_language``."""
        texts = self._messages[self.text_language(voice_language)]
        try:
            template = texts[key]
        except KeyError:
            raise CatalogError(f"no prompt {key!r}") from None
        try:
            return template.format_map(params)
        except KeyError as exc:
            raise CatalogError(f"prompt {key!r} needs parameter {exc.args[0]!r}") from None

    def languages(self) -> tuple[str, ...]:
        """Return the catalog languages."""
        return tuple(self._messages)

    def keys(self, language: str) -> frozenset[str]:
        """Return the prompt keys of one catalog language."""
        return frozenset(self._messages[language])

    def template(self, language: str, key: str) -> str:
        """Return one raw template (tests compare placeholders across languages)."""
        return self._messages[language][key]
