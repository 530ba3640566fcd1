-- wrk script for bench/load.sh: POST /api/mv/create_scenes with the create page's minimal body.
-- The default flavor asks for 6 scenes, which is what examples/fake_gemini answers with.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"idea": "a lighthouse keeper\'s last night before the light is automated", '
    .. '"character_description": "an old sailor with a grey beard and a yellow raincoat"}'
