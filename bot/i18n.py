"""Customer-facing texts the gateway itself sends (the bot's texts live in domain.yml).
Every text exists in en, de, tr and ja; tests/bot/test_i18n.py checks that."""
from __future__ import annotations

LANGUAGES = ("en", "de", "tr", "ja")

TEXTS: dict[str, dict[str, str]] = {
    "assistant_unavailable": {
        "en": "One moment, please: I'm having trouble answering right now. Your message is saved and we'll get back to you.",
        "de": "Einen Moment bitte: Ich kann gerade nicht antworten. Ihre Nachricht ist gespeichert und wir melden uns bei Ihnen.",
        "tr": "Bir dakika lütfen: Şu anda yanıt vermekte zorlanıyorum. Mesajınız kaydedildi, size geri döneceğiz.",
        "ja": "少々お待ちください。現在うまく応答できません。メッセージは保存されましたので、改めてご連絡いたします。",
    },
    "unsupported_message": {
        "en": "Sorry, I can only read text messages here. Please type your question and I'll be glad to help.",
        "de": "Entschuldigung, ich kann hier nur Textnachrichten lesen. Bitte schreiben Sie mir Ihre Frage, ich helfe gern.",
        "tr": "Üzgünüm, burada yalnızca yazılı mesajları okuyabiliyorum. Lütfen sorunuzu yazın, memnuniyetle yardımcı olurum.",
        "ja": "申し訳ありませんが、こちらではテキストメッセージのみ読み取れます。ご質問を文字で入力していただければ、喜んでお手伝いします。",
    },
    "choose_option": {
        "en": "Please choose:",
        "de": "Bitte wählen Sie:",
        "tr": "Lütfen seçin:",
        "ja": "お選びください：",
    },
    "list_button": {  # the button that opens a WhatsApp list (at most 20 characters)
        "en": "Choose",
        "de": "Auswählen",
        "tr": "Seçin",
        "ja": "選択する",
    },
    "list_section": {  # the title above a WhatsApp list's options (at most 24 characters)
        "en": "Options",
        "de": "Optionen",
        "tr": "Seçenekler",
        "ja": "選択肢",
    },
    # --- the website widget (bot/web/static/widget.js gets every "widget_" text) ---
    "widget_title": {
        "en": "Support",
        "de": "Kundenservice",
        "tr": "Destek",
        "ja": "サポート",
    },
    "widget_greeting": {
        "en": "Hi! Ask me anything – I'll find the answer in our help centre.",
        "de": "Hallo! Fragen Sie mich gern – ich suche die Antwort in unserem Hilfe-Center.",
        "tr": "Merhaba! Bana istediğinizi sorun, yanıtı yardım merkezimizde bulayım.",
        "ja": "こんにちは！何でもお気軽にお尋ねください。ヘルプセンターから答えを探します。",
    },
    "widget_launcher": {
        "en": "Chat with support",
        "de": "Chat mit dem Kundenservice",
        "tr": "Destek ile sohbet et",
        "ja": "サポートとチャット",
    },
    "widget_unread": {  # {n}: the number of new messages
        "en": "{n} new messages",
        "de": "{n} neue Nachrichten",
        "tr": "{n} yeni mesaj",
        "ja": "新着メッセージ {n} 件",
    },
    "widget_close": {
        "en": "Close chat",
        "de": "Chat schließen",
        "tr": "Sohbeti kapat",
        "ja": "チャットを閉じる",
    },
    "widget_conversation": {
        "en": "Conversation",
        "de": "Unterhaltung",
        "tr": "Sohbet",
        "ja": "会話",
    },
    "widget_placeholder": {
        "en": "Type your message…",
        "de": "Ihre Nachricht …",
        "tr": "Mesajınızı yazın…",
        "ja": "メッセージを入力…",
    },
    "widget_message_label": {
        "en": "Message",
        "de": "Nachricht",
        "tr": "Mesaj",
        "ja": "メッセージ",
    },
    "widget_send": {
        "en": "Send",
        "de": "Senden",
        "tr": "Gönder",
        "ja": "送信",
    },
    "widget_suggestions": {
        "en": "Suggested replies",
        "de": "Antwortvorschläge",
        "tr": "Önerilen yanıtlar",
        "ja": "返信の候補",
    },
    "widget_you": {
        "en": "You",
        "de": "Sie",
        "tr": "Siz",
        "ja": "あなた",
    },
    "widget_assistant": {
        "en": "Assistant",
        "de": "Assistent",
        "tr": "Asistan",
        "ja": "アシスタント",
    },
    "widget_agent": {
        "en": "Support team",
        "de": "Kundenservice-Team",
        "tr": "Destek ekibi",
        "ja": "サポートスタッフ",
    },
    "widget_agent_named": {  # above a person's message in the widget; {name}: the agent's display name
        "en": "{name} · Support team",
        "de": "{name} · Kundenservice-Team",
        "tr": "{name} · Destek ekibi",
        "ja": "{name}（サポートスタッフ）",
    },
    "widget_typing": {
        "en": "The assistant is typing…",
        "de": "Der Assistent schreibt …",
        "tr": "Asistan yazıyor…",
        "ja": "アシスタントが入力中…",
    },
    "widget_agent_typing": {
        "en": "Someone from our team is typing…",
        "de": "Jemand aus unserem Team schreibt …",
        "tr": "Ekibimizden biri yazıyor…",
        "ja": "スタッフが入力中…",
    },
    "widget_connecting": {
        "en": "Connecting…",
        "de": "Verbindung wird hergestellt …",
        "tr": "Bağlanıyor…",
        "ja": "接続中…",
    },
    "widget_reconnecting": {
        "en": "Reconnecting… Your messages will be sent as soon as we're back.",
        "de": "Verbindung wird wiederhergestellt … Ihre Nachrichten werden gesendet, sobald wir wieder da sind.",
        "tr": "Yeniden bağlanılıyor… Mesajlarınız bağlantı kurulur kurulmaz gönderilecek.",
        "ja": "再接続中… 接続が戻り次第、メッセージを送信します。",
    },
    "widget_not_sent": {
        "en": "Not sent yet",
        "de": "Noch nicht gesendet",
        "tr": "Henüz gönderilmedi",
        "ja": "未送信",
    },
    "widget_identity_refused": {
        "en": "We couldn't verify your account, so you're chatting as a guest.",
        "de": "Wir konnten Ihr Konto nicht bestätigen. Sie chatten daher als Gast.",
        "tr": "Hesabınızı doğrulayamadık, bu yüzden misafir olarak sohbet ediyorsunuz.",
        "ja": "アカウントを確認できなかったため、ゲストとしてチャットしています。",
    },
    "widget_too_long": {  # {n}: the longest message accepted
        "en": "This message is too long: please keep it under {n} characters.",
        "de": "Diese Nachricht ist zu lang: bitte höchstens {n} Zeichen.",
        "tr": "Bu mesaj çok uzun: lütfen en fazla {n} karakter kullanın.",
        "ja": "メッセージが長すぎます。{n} 文字以内でお願いします。",
    },
    "widget_rate_limited": {
        "en": "You're sending messages very quickly. Please wait a moment.",
        "de": "Sie senden sehr schnell Nachrichten. Bitte warten Sie einen Moment.",
        "tr": "Çok hızlı mesaj gönderiyorsunuz. Lütfen biraz bekleyin.",
        "ja": "メッセージの送信が速すぎます。少しお待ちください。",
    },
    "widget_failed": {
        "en": "This message could not be sent.",
        "de": "Diese Nachricht konnte nicht gesendet werden.",
        "tr": "Bu mesaj gönderilemedi.",
        "ja": "このメッセージは送信できませんでした。",
    },
    # --- human hand-off (bot/handoff): told when a conversation is queued for a person ---
    "handoff_queue_position": {  # {position}: 1 = next
        "en": "You're number {position} in the queue.",
        "de": "Sie sind Nummer {position} in der Warteschlange.",
        "tr": "Sırada {position}. sıradasınız.",
        "ja": "現在、順番待ちの{position}番目です。",
    },
    "handoff_wait_estimate": {  # {minutes}: median wait of recent hand-offs, 2 or more
        "en": "Recently, people waited about {minutes} minutes for someone from our team.",
        "de": "Zuletzt lag die Wartezeit auf unser Team bei etwa {minutes} Minuten.",
        "tr": "Son zamanlarda ekibimizden birinin yanıt vermesi yaklaşık {minutes} dakika sürdü.",
        "ja": "最近の待ち時間は約{minutes}分です。",
    },
    "handoff_wait_short": {
        "en": "Recently, someone from our team has usually answered within a minute or two.",
        "de": "Zuletzt hat unser Team meist innerhalb von ein, zwei Minuten geantwortet.",
        "tr": "Son zamanlarda ekibimiz genellikle bir iki dakika içinde yanıt verdi.",
        "ja": "最近は通常1〜2分以内にスタッフが対応しています。",
    },
    "handoff_wait_unknown": {
        "en": "We don't have enough recent data to estimate the wait; it's usually a few minutes.",
        "de": "Wir haben zu wenige aktuelle Daten, um die Wartezeit zu schätzen; meist sind es einige Minuten.",
        "tr": "Bekleme süresini tahmin etmek için yeterli güncel veri yok; genellikle birkaç dakika sürüyor.",
        "ja": "最近のデータが少ないため待ち時間は見積もれませんが、通常は数分です。",
    },
    "handoff_after_hours": {  # {hours}: opening hours, {timezone}: e.g. Europe/Berlin, {next_open}: handoff_next_open
        "en": "Our team is not available right now (opening hours: {hours}, {timezone} time). Your request is saved as a ticket, number {position} in the queue, and we'll pick it up when we're back: {next_open}.",
        "de": "Unser Team ist gerade nicht erreichbar (Servicezeiten: {hours}, Zeitzone {timezone}). Ihre Anfrage ist als Ticket gespeichert, Nummer {position} in der Warteschlange, und wir kümmern uns darum, sobald wir wieder da sind: {next_open}.",
        "tr": "Ekibimiz şu anda müsait değil (çalışma saatleri: {hours}, {timezone} saati). Talebiniz bir kayıt olarak saklandı, sırada {position}. sıradasınız; döndüğümüzde ilgileneceğiz: {next_open}.",
        "ja": "ただいま対応時間外です（対応時間：{hours}、{timezone}時間）。お問い合わせはチケットとして保存しました（順番待ち{position}番目）。再開後に対応いたします：{next_open}。",
    },
    "handoff_no_agent": {
        "en": "No one from our team is online right now. Your request is saved as a ticket, number {position} in the queue, and we'll pick it up as soon as someone is available.",
        "de": "Gerade ist niemand aus unserem Team online. Ihre Anfrage ist als Ticket gespeichert, Nummer {position} in der Warteschlange, und wir kümmern uns darum, sobald jemand da ist.",
        "tr": "Şu anda ekibimizden kimse çevrimiçi değil. Talebiniz bir kayıt olarak saklandı, sırada {position}. sıradasınız; biri müsait olur olmaz ilgileneceğiz.",
        "ja": "現在オンラインのスタッフがいません。お問い合わせはチケットとして保存しました（順番待ち{position}番目）。スタッフが対応可能になり次第、対応いたします。",
    },
    "handoff_next_open": {  # {day}: a weekdays_long name, {time}: HH:MM
        "en": "{day} at {time}",
        "de": "{day}, {time} Uhr",
        "tr": "{day} {time}",
        "ja": "{day} {time}",
    },
    "handoff_reach_email": {
        "en": "We'll answer here, and by email at {email}.",
        "de": "Wir antworten hier und per E-Mail an {email}.",
        "tr": "Size buradan ve {email} adresine e-postayla yanıt vereceğiz.",
        "ja": "こちらと、メール（{email}）でご連絡いたします。",
    },
    "handoff_reach_whatsapp": {
        "en": "We'll reply to you right here on WhatsApp.",
        "de": "Wir antworten Ihnen direkt hier auf WhatsApp.",
        "tr": "Size doğrudan buradan, WhatsApp üzerinden yanıt vereceğiz.",
        "ja": "このWhatsAppでそのままご返信いたします。",
    },
    "handoff_ask_email": {
        "en": "So that we can reach you even if you close this chat, please type your email address.",
        "de": "Damit wir Sie auch erreichen, wenn Sie diesen Chat schließen, schreiben Sie uns bitte Ihre E-Mail-Adresse.",
        "tr": "Bu sohbeti kapatsanız bile size ulaşabilmemiz için lütfen e-posta adresinizi yazın.",
        "ja": "このチャットを閉じてもご連絡できるよう、メールアドレスを入力してください。",
    },
    "handoff_email_saved": {
        "en": "Thank you! We'll get back to you at {email}.",
        "de": "Vielen Dank! Wir melden uns unter {email} bei Ihnen.",
        "tr": "Teşekkürler! Size {email} adresinden dönüş yapacağız.",
        "ja": "ありがとうございます。{email} 宛てにご連絡いたします。",
    },
    "handoff_agent_joined": {  # {name}: the agent's name
        "en": "{name} from our team is now with you.",
        "de": "{name} aus unserem Team ist jetzt für Sie da.",
        "tr": "Ekibimizden {name} artık sizinle.",
        "ja": "担当の{name}が対応いたします。",
    },
    "handoff_handed_back": {
        "en": "You're chatting with the assistant again. Ask me anything!",
        "de": "Sie schreiben wieder mit dem Assistenten. Fragen Sie mich gern!",
        "tr": "Yeniden asistanla sohbet ediyorsunuz. Bana istediğinizi sorun!",
        "ja": "アシスタントとのチャットに戻りました。何でもお尋ねください。",
    },
    "handoff_resolved": {
        "en": "Our team has closed this conversation. If you need anything else, just write again.",
        "de": "Unser Team hat diese Unterhaltung abgeschlossen. Wenn Sie noch etwas brauchen, schreiben Sie einfach wieder.",
        "tr": "Ekibimiz bu sohbeti kapattı. Başka bir şeye ihtiyacınız olursa tekrar yazmanız yeterli.",
        "ja": "スタッフがこの会話を終了しました。ほかにご用があれば、またメッセージをお送りください。",
    },
    "weekdays_short": {  # Monday first, comma-separated
        "en": "Mon,Tue,Wed,Thu,Fri,Sat,Sun",
        "de": "Mo,Di,Mi,Do,Fr,Sa,So",
        "tr": "Pzt,Sal,Çar,Per,Cum,Cmt,Paz",
        "ja": "月,火,水,木,金,土,日",
    },
    "weekdays_long": {  # Monday first, comma-separated
        "en": "Monday,Tuesday,Wednesday,Thursday,Friday,Saturday,Sunday",
        "de": "Montag,Dienstag,Mittwoch,Donnerstag,Freitag,Samstag,Sonntag",
        "tr": "Pazartesi,Salı,Çarşamba,Perşembe,Cuma,Cumartesi,Pazar",
        "ja": "月曜日,火曜日,水曜日,木曜日,金曜日,土曜日,日曜日",
    },
    "help_centre": {  # the title of the public help-centre pages the bot links to
        "en": "Help centre",
        "de": "Hilfe-Center",
        "tr": "Yardım merkezi",
        "ja": "ヘルプセンター",
    },
    "help_other_languages": {
        "en": "Also in:",
        "de": "Auch auf:",
        "tr": "Diğer diller:",
        "ja": "他の言語：",
    },
    "help_not_found": {
        "en": "This article does not exist or is no longer published.",
        "de": "Diesen Artikel gibt es nicht oder er ist nicht mehr veröffentlicht.",
        "tr": "Bu makale mevcut değil veya artık yayında değil.",
        "ja": "この記事は存在しないか、公開が終了しました。",
    },
    # --- the satisfaction survey after an agent resolved a conversation (bot/insights/surveys.py) ---
    "survey_csat": {
        "en": "How satisfied are you with the help you got? (1 = very dissatisfied, 5 = very satisfied)",
        "de": "Wie zufrieden sind Sie mit der Hilfe, die Sie bekommen haben? (1 = sehr unzufrieden, 5 = sehr zufrieden)",
        "tr": "Aldığınız destekten ne kadar memnunsunuz? (1 = hiç memnun değilim, 5 = çok memnunum)",
        "ja": "今回のサポートにどの程度満足されましたか？（1 = とても不満、5 = とても満足）",
    },
    "survey_nps": {
        "en": "How likely are you to recommend us to a friend or colleague? (0 = not at all likely, 10 = extremely likely)",
        "de": "Wie wahrscheinlich ist es, dass Sie uns einem Freund oder Kollegen empfehlen? (0 = überhaupt nicht, 10 = äußerst wahrscheinlich)",
        "tr": "Bizi bir arkadaşınıza veya iş arkadaşınıza tavsiye etme olasılığınız nedir? (0 = hiç olası değil, 10 = çok olası)",
        "ja": "当社を友人や同僚に薦める可能性はどのくらいありますか？（0 = まったくない、10 = 非常に高い）",
    },
    "survey_nps_type": {  # WhatsApp shows at most 10 choices: the customer types the number
        "en": "Please reply with a number from 0 to 10.",
        "de": "Bitte antworten Sie mit einer Zahl von 0 bis 10.",
        "tr": "Lütfen 0 ile 10 arasında bir sayı ile yanıtlayın.",
        "ja": "0から10までの数字でご返信ください。",
    },
    "survey_comment": {
        "en": "Thank you! Is there anything you would like to tell us? Write it here, or tap Skip.",
        "de": "Vielen Dank! Möchten Sie uns noch etwas mitteilen? Schreiben Sie es hier oder tippen Sie auf Überspringen.",
        "tr": "Teşekkürler! Bize iletmek istediğiniz bir şey var mı? Buraya yazın ya da Geç'e dokunun.",
        "ja": "ありがとうございます！ほかにお伝えいただきたいことはありますか？こちらにご記入いただくか、「スキップ」を押してください。",
    },
    "survey_skip": {  # a button title (at most 20 characters)
        "en": "Skip",
        "de": "Überspringen",
        "tr": "Geç",
        "ja": "スキップ",
    },
    "survey_thanks": {
        "en": "Thank you for your feedback! If you need anything else, just write again.",
        "de": "Vielen Dank für Ihr Feedback! Wenn Sie noch etwas brauchen, schreiben Sie einfach wieder.",
        "tr": "Geri bildiriminiz için teşekkürler! Başka bir şeye ihtiyacınız olursa tekrar yazmanız yeterli.",
        "ja": "フィードバックをありがとうございました！ほかにご用があれば、またメッセージをお送りください。",
    },
    # --- greeting a returning customer (bot/insights/returning.py) ---
    "returning_greeting": {
        "en": "Welcome back! Last time you asked about “{topic}”. Is this about that?",
        "de": "Willkommen zurück! Beim letzten Mal ging es um „{topic}“. Geht es wieder darum?",
        "tr": "Tekrar hoş geldiniz! Geçen sefer “{topic}” hakkında sormuştunuz. Yine bununla mı ilgili?",
        "ja": "おかえりなさい！前回は「{topic}」についてお問い合わせいただきました。今回もその件でしょうか？",
    },
    "returning_greeting_order": {
        "en": "Welcome back! Last time you asked about “{topic}” (order {order}). Is this about that?",
        "de": "Willkommen zurück! Beim letzten Mal ging es um „{topic}“ (Bestellung {order}). Geht es wieder darum?",
        "tr": "Tekrar hoş geldiniz! Geçen sefer “{topic}” hakkında sormuştunuz (sipariş {order}). Yine bununla mı ilgili?",
        "ja": "おかえりなさい！前回は「{topic}」（注文番号 {order}）についてお問い合わせいただきました。今回もその件でしょうか？",
    },
    "returning_yes": {  # a button title (at most 20 characters)
        "en": "Yes, about that",
        "de": "Ja, darum",
        "tr": "Evet, bununla ilgili",
        "ja": "はい、その件です",
    },
    "returning_no": {  # a button title (at most 20 characters)
        "en": "No, something new",
        "de": "Nein, etwas Neues",
        "tr": "Hayır, yeni bir konu",
        "ja": "いいえ、別の件です",
    },
    "returning_new": {
        "en": "All right! What can I do for you?",
        "de": "Alles klar! Was kann ich für Sie tun?",
        "tr": "Tamam! Size nasıl yardımcı olabilirim?",
        "ja": "承知しました！どのようなご用件でしょうか？",
    },
    "rate_limited": {
        "en": "You are sending messages faster than I can read them. Please wait a minute before writing again: your messages are saved.",
        "de": "Sie senden Nachrichten schneller, als ich sie lesen kann. Bitte warten Sie eine Minute, bevor Sie wieder schreiben: Ihre Nachrichten sind gespeichert.",
        "tr": "Mesajları okuyabileceğimden daha hızlı gönderiyorsunuz. Lütfen tekrar yazmadan önce bir dakika bekleyin: mesajlarınız kaydedildi.",
        "ja": "メッセージの送信が速すぎて読み切れません。1分ほどお待ちいただいてから再度お送りください。メッセージは保存されています。",
    },
}


def t(key: str, lang: str | None, **values) -> str:
    variants = TEXTS[key]
    text = variants.get(lang or "en") or variants["en"]
    return text.format(**values) if values else text
