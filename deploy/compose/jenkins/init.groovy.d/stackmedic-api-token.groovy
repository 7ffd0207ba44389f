// Gives the `stackmedic` user (security.yaml) the fixed API token of the compose secret
// jenkins_token, which stackmedic-receiver also reads. JCasC cannot set API tokens
// (configuration-as-code-plugin issue #1830), so this init script does, at every start:
// it revokes the previous token of that name first, so a rotated secret takes effect.
import hudson.model.User
import jenkins.security.ApiTokenProperty

def tokenFile = new File('/run/secrets/jenkins_token')
if (!tokenFile.exists()) {
    println('stackmedic: /run/secrets/jenkins_token missing, no API token set')
    return
}
def token = tokenFile.text.trim()
if (!(token ==~ /11[0-9a-f]{32}/)) {
    println('stackmedic: jenkins_token is not 11 + 32 hex digits (secrets/generate.sh makes one), no API token set')
    return
}
def user = User.getById('stackmedic', true)
def property = user.getProperty(ApiTokenProperty.class)
if (property == null) {
    property = new ApiTokenProperty()
    user.addProperty(property)
}
def store = property.getTokenStore()
store.getTokenListSortedByName().findAll { it.name == 'stackmedic-receiver' }.each {
    store.revokeToken(it.getUuid())
}
store.addFixedNewToken('stackmedic-receiver', token)
user.save()
println('stackmedic: API token of user stackmedic set from the jenkins_token secret')
